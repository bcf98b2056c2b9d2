package io.ptune.e2e;

import static io.ptune.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.CliRun.Result;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** `ptune train --method ...` for every method, then `logits` and `generate` with the adapter. */
class MethodsCliTest {
    private static final ObjectMapper JSON =
            new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
    private static final String MODEL = TestPaths.stories260k().toString();

    @TempDir
    Path dir;

    private Path data;
    private Path blocks;

    @BeforeEach
    void writeData() throws Exception {
        data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Tell a story about a cat.", "input": "", "output": "The cat was happy."}
                {"instruction": "Tell a story about a dog.", "input": "", "output": "The dog was happy."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
                """);
        blocks = dir.resolve("blocks.json");
        Files.writeString(blocks, """
                [{"name": "base", "num_virtual_tokens": 2, "init": "text:Once upon a time", "frozen": false},
                 {"name": "task", "num_virtual_tokens": 1, "init": "vocab", "learning_rate": 0.02}]
                """);
    }

    /** Method flags and the number of virtual rows `logits` prints. */
    static Stream<Arguments> methods() {
        return Stream.of(
                Arguments.of("prompt-tuning", List.of("--method", "prompt-tuning", "--virtual-tokens", "3",
                        "--init", "text:\"Once\""), 3),
                Arguments.of("p-tuning-mlp", List.of("--method", "p-tuning", "--virtual-tokens", "3", "--encoder", "mlp",
                        "--encoder-hidden-size", "16"), 3),
                Arguments.of("p-tuning-lstm", List.of("--method", "p-tuning", "--virtual-tokens", "3", "--encoder", "lstm",
                        "--encoder-hidden-size", "8", "--encoder-layers", "2", "--encoder-dropout", "0.1"), 3),
                Arguments.of("prefix", List.of("--method", "prefix-tuning", "--virtual-tokens", "3"), 0),
                Arguments.of("prefix-projection", List.of("--method", "prefix-tuning", "--virtual-tokens", "3",
                        "--prefix-projection", "--encoder-hidden-size", "16"), 0),
                Arguments.of("composite", List.of("--method", "composite", "--blocks", "BLOCKS"), 3),
                Arguments.of("dynamic", List.of("--method", "dynamic", "--virtual-tokens", "3", "--init", "vocab",
                        "--generator-hidden-size", "8"), 3));
    }

    private String[] trainArgs(Path out, List<String> methodFlags, String... more) {
        List<String> args = new ArrayList<>(List.of("train", "--model", MODEL, "--data", data.toString(), "--out",
                out.toString(), "--max-steps", "2", "--batch-size", "2", "--lr", "0.01"));
        for (String flag : methodFlags) {
            args.add(flag.equals("BLOCKS") ? blocks.toString() : flag);
        }
        args.addAll(List.of(more));
        return args.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    void trainsEveryMethodAndUsesTheAdapter(String name, List<String> flags, int virtualRows) throws Exception {
        Path out = dir.resolve(name);
        Result train = run(trainArgs(out, flags));
        assertEquals(0, train.exitCode(), train.err());
        assertTrue(train.out().contains("trained 2 steps"), train.out());

        Result logits = run("logits", "--model", MODEL, "--adapter", out.toString(), "--ids", "1,403,407", "--json");
        assertEquals(0, logits.exitCode(), logits.err());
        JsonNode json = JSON.readTree(logits.out());
        assertEquals(virtualRows, json.get("virtual_tokens").asInt(), "input-level virtual positions");
        assertEquals(virtualRows + 3, json.get("logits").size());
        try (Model model = Model.load(TestPaths.stories260k());
                PromptModule prompt = PromptAdapter.load(out, model)) {
            float[][] expected = model.logits(prompt, new long[] {1, 403, 407});
            for (int row = 0; row < expected.length; row++) {
                JsonNode printed = json.get("logits").get(row);
                float[] parsed = new float[printed.size()];
                for (int v = 0; v < parsed.length; v++) {
                    parsed[v] = Float.parseFloat(printed.get(v).decimalValue().toString());
                }
                // The CLI process computes on the same machine, shapes and thread count: bit-identical.
                assertArrayEquals(expected[row], parsed, name + " row " + row);
            }
        }

        Result generate = run("generate", "--model", MODEL, "--adapter", out.toString(), "--prompt", "Once upon a time",
                "--max-new-tokens", "5", "--json");
        assertEquals(0, generate.exitCode(), generate.err());
        JsonNode generated = JSON.readTree(generate.out());
        assertTrue(generated.get("generated_ids").size() >= 1 && generated.get("generated_ids").size() <= 5);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("methods")
    void aPromptOrPrefixOfLengthZeroIsRejected(String name, List<String> flags, int virtualRows) throws Exception {
        List<String> zero = new ArrayList<>(flags);
        if (name.equals("composite")) {
            Files.writeString(blocks, "[{\"name\": \"base\", \"num_virtual_tokens\": 0}]");
        } else {
            zero.set(zero.indexOf("--virtual-tokens") + 1, "0");
        }
        Result result = run(trainArgs(dir.resolve("zero-" + name), zero));
        assertEquals(1, result.exitCode(), result.out());
        String expected = name.equals("composite") ? "error: --blocks: " : "error: --virtual-tokens: must be > 0";
        assertTrue(result.err().contains(expected) && result.err().contains("0"), result.err());
        assertTrue(!Files.exists(dir.resolve("zero-" + name)), "nothing written");
    }

    @Test
    void twoStageTrainingWritesTheLayerFile() throws Exception {
        Path out = dir.resolve("two-stage");
        Path metrics = dir.resolve("metrics.jsonl");
        List<String> args = new ArrayList<>(Arrays.asList(trainArgs(out, List.of("--method", "prompt-tuning",
                "--virtual-tokens", "2"), "--stage2-layers", "1", "--stage2-steps", "2", "--stage2-lr", "1e-4",
                "--metrics-out", metrics.toString())));
        int lr = args.indexOf("--lr");
        args.remove(lr + 1);
        args.remove(lr);
        Result train = run(args.toArray(String[]::new));
        assertEquals(0, train.exitCode(), train.err());
        assertTrue(train.out().contains("trained 4 steps"), train.out());
        assertTrue(Files.exists(out.resolve(PromptAdapter.LAYERS_FILE)));
        List<String> lines = Files.readAllLines(metrics);
        assertEquals(4, lines.size());
        assertEquals(3e-3, JSON.readTree(lines.get(0)).get("lr").asDouble(), 1e-12, "stage 1 defaults to 3e-3");
        Result logits = run("logits", "--model", MODEL, "--adapter", out.toString(), "--ids", "1,403", "--json");
        assertEquals(0, logits.exitCode(), logits.err());
    }

    @Test
    void warmStartsFromASavedAdapter() throws Exception {
        Path first = dir.resolve("first");
        assertEquals(0, run(trainArgs(first, List.of("--virtual-tokens", "3"))).exitCode());
        Result warm = run(trainArgs(dir.resolve("warm"), List.of("--method", "p-tuning", "--virtual-tokens", "3",
                "--init", "from-adapter:" + first)));
        assertEquals(0, warm.exitCode(), warm.err());
        Result mismatch = run(trainArgs(dir.resolve("mismatch"), List.of("--method", "dynamic", "--virtual-tokens", "4",
                "--init", "from-adapter:" + first)));
        assertEquals(1, mismatch.exitCode());
        assertTrue(mismatch.err().contains("error: --init: ") && mismatch.err().contains("3 virtual tokens"),
                mismatch.err());
    }

    @Test
    void flagsOfAnotherMethodAreErrors() {
        for (List<String> flags : List.of(
                List.of("--method", "prompt-tuning", "--encoder", "lstm"),
                List.of("--method", "p-tuning", "--prefix-projection"),
                List.of("--method", "prefix-tuning", "--init", "vocab"),
                List.of("--method", "dynamic", "--blocks", "x.json"),
                List.of("--method", "composite", "--virtual-tokens", "3"),
                List.of("--method", "lora"),
                List.of("--method", "p-tuning", "--encoder", "gru"),
                List.of("--stage2-lr", "1e-5"))) {
            Result result = run(trainArgs(dir.resolve("never"), flags));
            assertEquals(1, result.exitCode(), flags.toString());
            assertTrue(result.err().startsWith("error: "), flags + ": " + result.err());
        }
        Result composite = run(trainArgs(dir.resolve("never"), List.of("--method", "composite")));
        assertEquals(1, composite.exitCode());
        assertTrue(composite.err().contains("--blocks"), composite.err());
    }
}
