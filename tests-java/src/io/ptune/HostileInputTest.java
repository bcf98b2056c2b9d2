package io.ptune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.ClassificationDataset;
import io.ptune.model.Architecture;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile input: each case ends in one clear {@link PtuneException} subclass whose message names
 * the file or field and what to do, and nothing is written. (The parsers are also fuzzed: see
 * the *FuzzTest classes and toolchains/fuzz-java.sh.)
 */
class HostileInputTest {
    @TempDir
    Path dir;

    private static final String MODEL = TestPaths.stories260k().toString();

    // ---------------------------------------------------------------------------------------------
    // safetensors

    private static byte[] safetensors(long declaredLength, byte[] header, byte[] data) {
        return ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(declaredLength).put(header).put(data).array();
    }

    private static byte[] safetensors(String header, int dataBytes) {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        return safetensors(json.length, json, new byte[dataBytes]);
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, bytes);
        return file;
    }

    /** Runs {@code call}, which must throw {@code type}; returns the message, after checking it names {@code file}. */
    private static <E extends PtuneException> String fails(Class<E> type, Path file, Executable call) {
        E e = assertThrows(type, call);
        assertTrue(e.getMessage().contains(file.toString()), () -> "the message does not name " + file + ": "
                + e.getMessage());
        return e.getMessage();
    }

    private static void assertContains(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message.contains(part), () -> "expected '" + part + "' in: " + message);
        }
    }

    @Test
    void safetensorsHeaderLengthOf2To63IsRefusedBeforeAllocating() throws IOException {
        Path file = write("huge.safetensors", safetensors(1L << 63, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]));
        String message = fails(ModelFormatException.class, file, () -> Safetensors.open(file));
        assertContains(message, "header length 9223372036854775808", "truncated or not safetensors");
    }

    @Test
    void safetensorsOverlappingOffsetsAreRefused() throws IOException {
        Path file = write("overlap.safetensors", safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12));
        String message = fails(ModelFormatException.class, file, () -> Safetensors.open(file));
        assertContains(message, "tensor 'b' starts at byte 4", "without holes or overlaps");
    }

    @Test
    void safetensorsOffsetsPastTheEndAreRefused() throws IOException {
        Path file = write("short.safetensors",
                safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8));
        String message = fails(ModelFormatException.class, file, () -> Safetensors.open(file));
        assertContains(message, "describes 16 bytes of tensor data but the file holds 8", "truncated or corrupt");
        // An offset beyond any long is no offset either.
        Path beyond = write("beyond.safetensors", safetensors(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[18446744073709551616,18446744073709551616]}}", 0));
        assertContains(fails(ModelFormatException.class, beyond, () -> Safetensors.open(beyond)), "data_offsets");
        Path shape = write("shape.safetensors", safetensors(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,0]}}", 0));
        assertContains(fails(ModelFormatException.class, shape, () -> Safetensors.open(shape)), "invalid shape");
    }

    @Test
    void safetensorsDtypeThatIsNoDtypeIsRefused() throws IOException {
        Path file = write("dtype.safetensors",
                safetensors("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
        String message = fails(ModelFormatException.class, file, () -> Safetensors.open(file));
        assertContains(message, "tensor 'a' has unknown dtype 'F33'", "F32", "BF16");
    }

    @Test
    void safetensorsHeaderThatIsNotUtf8IsRefused() throws IOException {
        ByteArrayOutputStream header = new ByteArrayOutputStream();
        header.writeBytes("{\"a".getBytes(StandardCharsets.US_ASCII));
        header.write(0xFF);  // never part of UTF-8
        header.writeBytes("\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(StandardCharsets.US_ASCII));
        Path file = write("latin.safetensors", safetensors(header.size(), header.toByteArray(), new byte[4]));
        String message = fails(ModelFormatException.class, file, () -> Safetensors.open(file));
        assertContains(message, "not UTF-8");
    }

    // ---------------------------------------------------------------------------------------------
    // data that is not UTF-8

    @Test
    void datasetThatIsNotUtf8NamesTheLine() throws IOException {
        byte[] latin1 = "{\"instruction\":\"Caf\u00e9?\",\"output\":\"ja\"}\n".getBytes(StandardCharsets.ISO_8859_1);
        byte[] good = "{\"instruction\":\"Hi\",\"output\":\"there\"}\n".getBytes(StandardCharsets.UTF_8);
        Path lines = write("latin1.jsonl", concat(good, latin1));
        assertContains(fails(DatasetException.class, lines, () -> AlpacaDataset.load(lines)),
                "is not UTF-8 text", "line 2", "convert the file to UTF-8");

        Path array = write("latin1.json", concat("[\n".getBytes(StandardCharsets.UTF_8), latin1, "]".getBytes(StandardCharsets.UTF_8)));
        assertContains(fails(DatasetException.class, array, () -> AlpacaDataset.load(array)),
                "is not UTF-8 text", "line 2", "convert the file to UTF-8");

        Path csv = write("latin1.csv", concat("text,label\nfine,1\n".getBytes(StandardCharsets.UTF_8),
                "caf\u00e9,0\n".getBytes(StandardCharsets.ISO_8859_1)));
        assertContains(fails(DatasetException.class, csv, () -> ClassificationDataset.load(csv)),
                "is not UTF-8 text", "line 3 (byte offset 21)", "convert the file to UTF-8");

        Path jsonl = write("latin1-cls.jsonl", "{\"text\":\"caf\u00e9\",\"label\":1}\n".getBytes(StandardCharsets.ISO_8859_1));
        assertContains(fails(DatasetException.class, jsonl, () -> ClassificationDataset.load(jsonl)),
                "is not UTF-8 text", "line 1");
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    // ---------------------------------------------------------------------------------------------
    // JSON nested 10,000 levels deep

    private static String nested(int depth) {
        return "[".repeat(depth) + "]".repeat(depth);
    }

    @Test
    void jsonNested10000LevelsDeepIsRefusedEverywhere() throws IOException {
        String deep = nested(10_000);
        Path lines = write("deep.jsonl", ("{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":" + deep
                + ",\"output\":\"b\"}\n").getBytes(StandardCharsets.UTF_8));
        assertContains(fails(DatasetException.class, lines, () -> AlpacaDataset.load(lines)),
                "line 2", "exceeds a limit of the JSON reader", "nesting depth");

        Path array = write("deep.json", ("[{\"instruction\":\"a\",\"output\":\"b\"}," + deep + "]")
                .getBytes(StandardCharsets.UTF_8));
        assertContains(fails(DatasetException.class, array, () -> AlpacaDataset.load(array)),
                "row 2", "exceeds a limit of the JSON reader", "nesting depth");

        Path classification = write("deep-cls.jsonl", ("{\"text\":\"a\",\"label\":" + deep + "}\n")
                .getBytes(StandardCharsets.UTF_8));
        assertContains(fails(DatasetException.class, classification, () -> ClassificationDataset.load(classification)),
                "exceeds a limit of the JSON reader", "nesting depth");

        Path config = write("config.json", ("{\"model_type\":\"llama\",\"rope_scaling\":" + deep + "}")
                .getBytes(StandardCharsets.UTF_8));
        assertContains(fails(ModelFormatException.class, config, () -> Architecture.fromConfigJson(config)),
                "exceeds a limit of the JSON reader", "nesting depth");

        Path adapter = Files.createDirectories(dir.resolve("deep-adapter"));
        Files.writeString(adapter.resolve(PromptAdapter.CONFIG_FILE), "{\"peft_type\":" + deep + "}");
        Architecture arch = Architecture.fromConfigJson(TestPaths.stories260k().resolve("config.json"));
        assertContains(fails(AdapterException.class, adapter.resolve(PromptAdapter.CONFIG_FILE),
                () -> PromptAdapter.readInputPrompt(adapter, arch, null)), "exceeds a limit of the JSON reader");

        Path header = write("deep.safetensors", safetensors("{\"a\":" + deep + "}", 0));
        assertContains(fails(ModelFormatException.class, header, () -> Safetensors.open(header)),
                "exceeds a limit of the JSON reader");
    }

    // ---------------------------------------------------------------------------------------------
    // adapters

    @Test
    void unknownPeftTypeIsOneClearError() throws IOException {
        Path adapter = Files.createDirectories(dir.resolve("lora"));
        Files.writeString(adapter.resolve(PromptAdapter.CONFIG_FILE),
                "{\"peft_type\": \"LORA\", \"r\": 8, \"num_virtual_tokens\": 4, \"token_dim\": 64}");
        Architecture arch = Architecture.fromConfigJson(TestPaths.stories260k().resolve("config.json"));
        assertContains(fails(AdapterException.class, adapter, () -> PromptAdapter.readInputPrompt(adapter, arch, null)),
                "peft_type LORA is not a prompt-learning method", "PROMPT_TUNING, P_TUNING, PREFIX_TUNING");

        Cli result = cli("generate", "--model", MODEL, "--adapter", adapter.toString(), "--ids", "1");
        result.assertOneErrorLine("peft_type LORA is not a prompt-learning method");
    }

    @Test
    void adapterSaveIntoAFolderThatCannotExistWritesNothing() throws IOException {
        Path file = write("a-file", "not a folder".getBytes(StandardCharsets.UTF_8));
        Path out = file.resolve("adapter");
        try (Model model = Model.load(TestPaths.stories260k());
                PromptModule prompt = PromptModule.create(model,
                        PromptTuningConfig.builder().numVirtualTokens(2).build())) {
            String message = fails(AdapterException.class, out, () -> PromptAdapter.save(prompt, out));
            assertContains(message, file + " is a file, not a folder", "choose another --out");
            Path proc = Path.of("/proc/ptune-adapter-test");
            // procfs takes no new files (root gets ENOENT, others EACCES): either way one plain sentence.
            String procMessage = fails(AdapterException.class, proc, () -> PromptAdapter.save(prompt, proc));
            assertContains(procMessage, "cannot write the adapter to /proc/ptune-adapter-test: ", "choose another --out");
            assertFalse(procMessage.contains("java.nio"), procMessage);
            assertFalse(Files.exists(proc));
        }
        assertEquals("not a folder", Files.readString(file));
        assertEquals(List.of(file), listing(dir));
    }

    @Test
    void trainIntoAnUnwritableOutFailsWithOneLineAndWritesNothing() throws IOException {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"instruction\":\"Tell me a story.\",\"input\":\"\","
                + "\"output\":\"Once upon a time, there was a little dog named Max.\"}\n");
        Path file = write("a-file", "not a folder".getBytes(StandardCharsets.UTF_8));
        Path out = file.resolve("adapter");
        Cli result = cli("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--max-steps", "1", "--batch-size", "1", "--virtual-tokens", "2");
        result.assertOneErrorLine(file + " is a file, not a folder");
        assertEquals(List.of(file, data).stream().sorted().toList(), listing(dir));
    }

    // ---------------------------------------------------------------------------------------------
    // sequences longer than the model's positions (stories260k: max_position_embeddings 512)

    @Test
    void trainingLongerThanThePositionsSaysWhatToDo() throws IOException {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"instruction\":\"Tell me a story.\",\"output\":\"Once upon a time.\"}\n"
                + "{\"instruction\":\"Tell me a long story.\",\"output\":\""
                + "Once upon a time, there was a little dog named Max. ".repeat(60) + "\"}\n");
        Path out = dir.resolve("adapter");
        Cli result = cli("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--max-steps", "1", "--virtual-tokens", "20", "--max-length", "600");
        result.assertOneErrorLine("--max-length: is 600", "example of 600 tokens", "20 virtual tokens",
                "512 positions (config.json max_position_embeddings", "give --max-length 492 or less");
        assertFalse(Files.exists(out));
        // Within the positions it trains.
        Cli fits = cli("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--max-steps", "1", "--virtual-tokens", "20", "--max-length", "492");
        assertEquals(0, fits.exitCode(), fits.err());
    }

    @Test
    void generationLongerThanThePositionsSaysWhatToDo() {
        Cli result = cli("generate", "--model", MODEL, "--ids", "1,2,3", "--max-new-tokens", "600");
        result.assertOneErrorLine("--max-new-tokens: is 600", "512 positions (config.json max_position_embeddings",
                "give --max-new-tokens 509 or less");
    }

    // ---------------------------------------------------------------------------------------------

    private static List<Path> listing(Path folder) throws IOException {
        try (Stream<Path> entries = Files.list(folder)) {
            return entries.sorted().toList();
        }
    }

    record Cli(int exitCode, String out, String err) {
        /** Exit code 1 and exactly one line on stderr: "error: ..." holding every part. */
        void assertOneErrorLine(String... parts) {
            assertEquals(1, exitCode, err);
            List<String> lines = err.strip().lines().toList();
            assertEquals(1, lines.size(), () -> "one line expected: " + err);
            assertTrue(lines.get(0).startsWith("error: "), err);
            assertContains(lines.get(0), parts);
        }
    }

    private static Cli cli(String... args) {
        CliRun.Result result = CliRun.run(args);
        return new Cli(result.exitCode(), result.out(), result.err());
    }
}
