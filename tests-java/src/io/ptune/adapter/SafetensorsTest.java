package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.ModelFormatException;
import io.ptune.TestPaths;
import io.ptune.adapter.Safetensors.DType;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    @TempDir
    Path dir;

    /** A safetensors file built by hand: header text and raw data bytes. */
    static byte[] file(String header, byte[] data) {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buffer = ByteBuffer.allocate(8 + json.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.putLong(json.length).put(json).put(data);
        return buffer.array();
    }

    static byte[] f32(float... values) {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buffer.putFloat(v);
        }
        return buffer.array();
    }

    static byte[] u16(int... values) {
        ByteBuffer buffer = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            buffer.putShort((short) v);
        }
        return buffer.array();
    }

    private Path write(byte[] bytes) throws IOException {
        Path file = dir.resolve("t.safetensors");
        Files.write(file, bytes);
        return file;
    }

    @Test
    void roundTripsFloatTensorsAndMetadata() throws IOException {
        Map<String, FloatTensor> tensors = new LinkedHashMap<>();
        tensors.put("a", new FloatTensor(new long[] {2, 3}, new float[] {1, -2, 3.5f, Float.MIN_VALUE, 1e30f, -0f}));
        tensors.put("b", new FloatTensor(new long[] {4}, new float[] {0.1f, 0.2f, 0.3f, 0.4f}));
        Path file = dir.resolve("rt.safetensors");
        Safetensors.write(file, tensors, Map.of("format", "pt"));

        SafetensorsFile read = Safetensors.open(file);
        assertEquals(Map.of("format", "pt"), read.metadata());
        assertEquals(tensors.keySet(), read.tensors().keySet());
        assertEquals(DType.F32, read.tensors().get("a").dtype());
        for (String name : tensors.keySet()) {
            assertEquals(tensors.get(name), read.readFloat(name), name);
        }
        // The header is padded to 8 bytes so the data stays aligned.
        assertEquals(0, read.dataStart() % 8);
    }

    @Test
    void writesTheExactReferenceLayout() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Safetensors.write(out, Map.of("x", new FloatTensor(new long[] {1, 2}, new float[] {1f, 2f})), Map.of());
        byte[] bytes = out.toByteArray();
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
        assertEquals("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}", header.strip());
        assertArrayEquals(f32(1f, 2f), Arrays.copyOfRange(bytes, 8 + (int) headerLength, bytes.length));
    }

    @Test
    void readsHalfAndBfloat16() throws IOException {
        // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001 = 2^-24, +inf 0x7C00.
        // BF16: 1.0 = 0x3F80, -2.0 = 0xC000, 3.140625 = 0x4049.
        String header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[10,16]}}";
        byte[] data = new byte[16];
        System.arraycopy(u16(0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00), 0, data, 0, 10);
        System.arraycopy(u16(0x3F80, 0xC000, 0x4049), 0, data, 10, 6);
        SafetensorsFile file = Safetensors.open(write(file(header, data)));
        assertArrayEquals(new float[] {1f, -2f, 65504f, 0x1p-24f, Float.POSITIVE_INFINITY},
                file.readFloat("h").data());
        assertArrayEquals(new float[] {1f, -2f, 3.140625f}, file.readFloat("b").data());
    }

    @Test
    void readsTheRealStories260kWeights() {
        SafetensorsFile file = Safetensors.open(TestPaths.stories260k().resolve("model.safetensors"));
        assertEquals(47, file.tensors().size());
        assertArrayEquals(new long[] {512, 64}, file.tensors().get("model.embed_tokens.weight").shape());
        assertEquals(64, file.readFloat("model.norm.weight").data().length);
    }

    private void assertCorrupt(byte[] bytes, String expected) throws IOException {
        Path file = write(bytes);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Safetensors.open(file));
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
    }

    @Test
    void rejectsCorruptFiles() throws IOException {
        String ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertCorrupt(new byte[] {1, 2, 3}, "only 3 bytes");
        // Header length larger than the file.
        byte[] good = file(ok, f32(1, 2));
        byte[] lying = good.clone();
        ByteBuffer.wrap(lying).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 10_000);
        assertCorrupt(lying, "header length");
        assertCorrupt(file("{\"x\": [", f32(1, 2)), "not valid JSON");
        assertCorrupt(file(ok, f32(1)), "truncated");
        assertCorrupt(file(ok.replace("F32", "F33"), f32(1, 2)), "unknown dtype 'F33'");
        assertCorrupt(file(ok.replace("[2]", "[3]"), f32(1, 2)), "needs 12 bytes");
        assertCorrupt(file("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", f32(1, 2)),
                "contiguous");
        assertCorrupt(file("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f32(1, 2)), "contiguous");
        assertCorrupt(file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", f32(1, 2)), "data_offsets");
        assertCorrupt(file("{\"__metadata__\":{\"a\":1}}", new byte[0]), "__metadata__");
    }

    @Test
    void missingFileAndUnknownTensorAreReported() throws IOException {
        assertThrows(ModelFormatException.class, () -> Safetensors.open(dir.resolve("missing.safetensors")));
        SafetensorsFile file = Safetensors.open(write(file(
                "{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", new byte[8])));
        assertTrue(assertThrows(ModelFormatException.class, () -> file.readFloat("nope")).getMessage().contains("nope"));
        assertTrue(assertThrows(ModelFormatException.class, () -> file.readFloat("i")).getMessage().contains("I64"));
    }

    @Test
    void halfToFloatCoversSpecialValues() {
        assertEquals(0f, Safetensors.halfToFloat((short) 0x0000));
        assertEquals(Float.floatToIntBits(-0f), Float.floatToIntBits(Safetensors.halfToFloat((short) 0x8000)));
        assertEquals(Float.NEGATIVE_INFINITY, Safetensors.halfToFloat((short) 0xFC00));
        assertTrue(Float.isNaN(Safetensors.halfToFloat((short) 0x7E00)));
        assertEquals(0.333251953125f, Safetensors.halfToFloat((short) 0x3555));
        assertEquals(-0x1.ff8p-15f, Safetensors.halfToFloat((short) 0x83FF), "largest negative subnormal");
    }
}
