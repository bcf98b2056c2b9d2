package io.ptune.adapter;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A small reader and writer of the safetensors format, enough for prompt adapters:
 *
 * <pre>
 *   u64 little-endian N | N bytes of UTF-8 JSON header | data
 *   header: {"name": {"dtype": "F32", "shape": [n, d], "data_offsets": [begin, end]}, ...,
 *            "__metadata__": {"key": "value"}}   (offsets relative to the start of data)
 * </pre>
 *
 * Reads F32, F16 and BF16 tensors as float; writes F32. The header is validated as the reference
 * implementation does (offsets contiguous and covering the data exactly, sizes matching the
 * shapes), so a truncated or corrupt file is reported instead of read as garbage.
 */
public final class Safetensors {
    /** Refuse absurd header lengths before allocating (the reference implementation caps at 100 MB). */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    private static final String METADATA_KEY = "__metadata__";

    /** The element types of the format and their sizes in bytes. */
    public enum DType {
        BOOL(1), U8(1), I8(1), F8_E5M2(1), F8_E4M3(1), I16(2), U16(2), F16(2), BF16(2),
        I32(4), U32(4), F32(4), F64(8), I64(8), U64(8);

        private final int bytes;

        DType(int bytes) {
            this.bytes = bytes;
        }

        public int bytes() {
            return bytes;
        }

        static DType parse(String name) {
            for (DType type : values()) {
                if (type.name().equals(name)) {
                    return type;
                }
            }
            return null;
        }
    }

    /**
     * One tensor's header entry.
     *
     * @param begin first byte, relative to the start of the data section
     * @param end one past the last byte
     */
    public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long numel() {
            long n = 1;
            for (long s : shape) {
                n = Math.multiplyExact(n, s);
            }
            return n;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
                    && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
        }

        @Override
        public int hashCode() {
            return Objects.hash(name, dtype, Arrays.hashCode(shape), begin, end);
        }

        @Override
        public String toString() {
            return name + " " + dtype + Arrays.toString(shape);
        }
    }

    /** A float tensor: its shape and its values, row-major. */
    public record FloatTensor(long[] shape, float[] data) {
        public FloatTensor {
            long numel = 1;
            for (long s : shape) {
                if (s < 0) {
                    throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
                }
                numel *= s;
            }
            if (numel != data.length) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + numel
                        + " values, got " + data.length);
            }
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof FloatTensor t && Arrays.equals(shape, t.shape) && Arrays.equals(data, t.data);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(shape) + Arrays.hashCode(data);
        }

        @Override
        public String toString() {
            return "FloatTensor" + Arrays.toString(shape);
        }
    }

    /**
     * An opened, validated safetensors file. Tensor data is read on demand.
     *
     * @param dataStart absolute file offset of the data section (8 + header length)
     */
    public record SafetensorsFile(Path path, long dataStart, Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {

        public SafetensorsFile {
            tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
            metadata = Map.copyOf(metadata);
        }

        /**
         * Reads tensor {@code name} as float (F16 and BF16 are converted exactly, F64 is rounded to
         * the nearest float).
         *
         * @throws ModelFormatException if there is no such tensor or its dtype is not a float type
         */
        public FloatTensor readFloat(String name) {
            TensorInfo info = tensors.get(name);
            if (info == null) {
                throw new ModelFormatException(path + " has no tensor '" + name + "'; it holds "
                        + tensors.keySet());
            }
            if (info.dtype() != DType.F32 && info.dtype() != DType.F16 && info.dtype() != DType.BF16
                    && info.dtype() != DType.F64) {
                throw new ModelFormatException(path + ": tensor '" + name + "' has dtype " + info.dtype()
                        + "; only F32, F16, BF16 and F64 can be read");
            }
            long bytes = info.end() - info.begin();
            if (bytes > Integer.MAX_VALUE) {
                throw new ModelFormatException(path + ": tensor '" + name + "' is too large to read"
                        + " into one Java array (" + bytes + " bytes)");
            }
            ByteBuffer buffer = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
            try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
                long position = dataStart + info.begin();
                while (buffer.hasRemaining()) {
                    int read = channel.read(buffer, position + buffer.position());
                    if (read < 0) {
                        throw new ModelFormatException(path + " ended inside tensor '" + name + "'");
                    }
                }
            } catch (IOException e) {
                throw new ModelFormatException("cannot read " + path + ": " + e, e);
            }
            buffer.flip();
            float[] out = new float[Math.toIntExact(info.numel())];
            switch (info.dtype()) {
                case F32 -> buffer.asFloatBuffer().get(out);
                case F16 -> {
                    for (int i = 0; i < out.length; i++) {
                        out[i] = halfToFloat(buffer.getShort());
                    }
                }
                case BF16 -> {
                    for (int i = 0; i < out.length; i++) {
                        out[i] = Float.intBitsToFloat((buffer.getShort() & 0xFFFF) << 16);
                    }
                }
                case F64 -> {
                    for (int i = 0; i < out.length; i++) {
                        out[i] = (float) buffer.getDouble();
                    }
                }
                default -> throw new AssertionError(info.dtype());
            }
            return new FloatTensor(info.shape(), out);
        }
    }

    private Safetensors() {}

    /**
     * Opens {@code file} and validates its header.
     *
     * @throws ModelFormatException naming the file if it is missing, truncated or malformed
     */
    public static SafetensorsFile open(Path file) {
        long fileSize;
        byte[] headerBytes;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            fileSize = channel.size();
            if (fileSize < 8) {
                throw new ModelFormatException(file + " is not a safetensors file: it has only "
                        + fileSize + " bytes (at least 8 needed for the header length)");
            }
            ByteBuffer lengthBuffer = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBuffer, 0, file);
            long headerLength = lengthBuffer.flip().getLong();
            if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > fileSize) {
                throw new ModelFormatException(file + " is not a valid safetensors file: header length "
                        + Long.toUnsignedString(headerLength) + " does not fit a file of " + fileSize
                        + " bytes (truncated or not safetensors?)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLength);
            readFully(channel, header, 8, file);
            headerBytes = header.array();
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + " does not exist", e);
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + file + ": " + e, e);
        }
        long dataStart = 8L + headerBytes.length;
        return parseHeader(file, headerBytes, dataStart, fileSize - dataStart);
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, long position, Path file)
            throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position()) < 0) {
                throw new ModelFormatException(file + " is truncated");
            }
        }
    }

    private static SafetensorsFile parseHeader(Path file, byte[] headerBytes, long dataStart, long dataSize) {
        String headerText;
        try {
            // Strict: the format's header is UTF-8 JSON; a malformed byte is corruption, not text.
            headerText = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(headerBytes)).toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(file + " has a corrupt safetensors header: it is not UTF-8 text ("
                    + e.getMessage() + "); the file is damaged or not safetensors", e);
        }
        JsonNode root;
        try {
            root = JsonFiles.MAPPER.readTree(headerText);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file + " has a corrupt safetensors header: it "
                    + JsonFiles.describe(e), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + " has a corrupt safetensors header (not a JSON object)");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorInfo> infos = new ArrayList<>();
        for (Map.Entry<String, JsonNode> entry : root.properties()) {
            String name = entry.getKey();
            JsonNode value = entry.getValue();
            if (name.equals(METADATA_KEY)) {
                if (!value.isObject()) {
                    throw new ModelFormatException(file + ": __metadata__ must be an object of strings");
                }
                for (Map.Entry<String, JsonNode> item : value.properties()) {
                    if (!item.getValue().isTextual()) {
                        throw new ModelFormatException(file + ": __metadata__ value for '" + item.getKey()
                                + "' must be a string, got " + item.getValue());
                    }
                    metadata.put(item.getKey(), item.getValue().asText());
                }
                continue;
            }
            infos.add(parseTensorInfo(file, name, value));
        }
        // The data section must be covered exactly, tensor after tensor, without holes or overlaps.
        List<TensorInfo> byOffset = new ArrayList<>(infos);
        byOffset.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long expected = 0;
        for (TensorInfo info : byOffset) {
            if (info.begin() != expected) {
                throw new ModelFormatException(file + ": tensor '" + info.name() + "' starts at byte "
                        + info.begin() + " of the data but " + expected + " was expected (data_offsets"
                        + " must be contiguous, without holes or overlaps)");
            }
            expected = info.end();
        }
        if (expected != dataSize) {
            throw new ModelFormatException(file + ": the header describes " + expected
                    + " bytes of tensor data but the file holds " + dataSize
                    + " (truncated or corrupt file?)");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (TensorInfo info : infos) {
            tensors.put(info.name(), info);
        }
        return new SafetensorsFile(file, dataStart, tensors, metadata);
    }

    private static TensorInfo parseTensorInfo(Path file, String name, JsonNode value) {
        String where = file + ": tensor '" + name + "'";
        if (!value.isObject()) {
            throw new ModelFormatException(where + " must be described by an object, got " + value);
        }
        JsonNode dtypeNode = value.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new ModelFormatException(where + " has no dtype");
        }
        DType dtype = DType.parse(dtypeNode.asText());
        if (dtype == null) {
            throw new ModelFormatException(where + " has unknown dtype '" + dtypeNode.asText() + "'; the format's"
                    + " dtypes are " + Arrays.toString(DType.values()) + " (a corrupt file, or not safetensors?)");
        }
        JsonNode shapeNode = value.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new ModelFormatException(where + " has no shape array");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode dim = shapeNode.get(i);
            if (!dim.isIntegralNumber() || !dim.canConvertToLong() || dim.asLong() < 0) {
                throw new ModelFormatException(where + " has an invalid shape " + shapeNode);
            }
            shape[i] = dim.asLong();
        }
        JsonNode offsets = value.get("data_offsets");
        if (offsets == null || !offsets.isArray() || offsets.size() != 2
                || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()
                || !offsets.get(0).canConvertToLong() || !offsets.get(1).canConvertToLong()) {
            throw new ModelFormatException(where + " needs data_offsets [begin, end], got " + offsets);
        }
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        if (begin < 0 || end < begin) {
            throw new ModelFormatException(where + " has invalid data_offsets " + offsets);
        }
        long numel;
        try {
            numel = 1;
            for (long s : shape) {
                numel = Math.multiplyExact(numel, s);
            }
            if (Math.multiplyExact(numel, (long) dtype.bytes()) != end - begin) {
                throw new ModelFormatException(where + ": shape " + shapeNode + " of " + dtype + " needs "
                        + numel * dtype.bytes() + " bytes but data_offsets " + offsets + " span "
                        + (end - begin));
            }
        } catch (ArithmeticException e) {
            throw new ModelFormatException(where + " has an impossibly large shape " + shapeNode, e);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /**
     * Writes F32 tensors (in the map's order) and optional string metadata to {@code out}.
     * The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so
     * the data stays aligned for memory mapping.
     */
    public static void write(OutputStream out, Map<String, FloatTensor> tensors, Map<String, String> metadata)
            throws IOException {
        ObjectNode header = JsonFiles.MAPPER.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject(METADATA_KEY);
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, FloatTensor> entry : tensors.entrySet()) {
            if (entry.getKey().equals(METADATA_KEY)) {
                throw new IllegalArgumentException("a tensor cannot be named " + METADATA_KEY);
            }
            FloatTensor tensor = entry.getValue();
            ObjectNode info = header.putObject(entry.getKey());
            info.put("dtype", DType.F32.name());
            ArrayNode shape = info.putArray("shape");
            for (long s : tensor.shape()) {
                shape.add(s);
            }
            long bytes = 4L * tensor.data().length;
            info.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = JsonFiles.MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT)
                .writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        byte[] headerBytes = Arrays.copyOf(json, padded);
        Arrays.fill(headerBytes, json.length, padded, (byte) ' ');

        ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
        out.write(length.array());
        out.write(headerBytes);
        for (FloatTensor tensor : tensors.values()) {
            ByteBuffer data = ByteBuffer.allocate(4 * tensor.data().length).order(ByteOrder.LITTLE_ENDIAN);
            data.asFloatBuffer().put(tensor.data());
            out.write(data.array());
        }
    }

    /** Writes a safetensors file (not atomically; callers that need atomicity write to a temp path). */
    public static void write(Path file, Map<String, FloatTensor> tensors, Map<String, String> metadata)
            throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file))) {
            write(out, tensors, metadata);
        }
    }

    /** IEEE 754 half precision to float, including subnormals, infinities and NaN. */
    static float halfToFloat(short half) {
        int bits = half & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        if (exponent == 0) {
            if (mantissa == 0) {
                return Float.intBitsToFloat(sign);
            }
            // Subnormal half: value = mantissa * 2^-24.
            float value = mantissa * 0x1p-24f;
            return sign == 0 ? value : -value;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
}
