package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.CliRun.Result;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The command line on every family: {@code train} (causal-LM task) with every method on GPT-2 and
 * BLOOM, {@code logits} / {@code generate} with the adapters, MLM {@code logits} on BERT,
 * {@code embed} on BERT and on a real ONNX encoder, and ids on a folder without tokenizer files.
 */
class FamiliesCliTest {
    private static final ObjectMapper JSON =
            new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

    @TempDir
    Path dir;

    private Path data;
    private Path blocks;

    private static Path model(String name) {
        return TestPaths.root().resolve("tests-java/resources/families").resolve(name).resolve("model");
    }

    @BeforeEach
    void writeData() throws Exception {
        data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                {"instruction": "给出保持健康的三个建议。", "input": "", "output": "多喝水。"}
                {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
                """);
        blocks = dir.resolve("blocks.json");
        Files.writeString(blocks, """
                [{"name": "base", "num_virtual_tokens": 2, "init": "text:Give three tips"},
                 {"name": "task", "num_virtual_tokens": 1, "init": "vocab", "learning_rate": 0.02}]
                """);
    }

    static Stream<Arguments> decoderMethods() {
        List<List<String>> methods = List.of(
                List.of("--method", "prompt-tuning", "--virtual-tokens", "3", "--init", "vocab"),
                List.of("--method", "p-tuning", "--virtual-tokens", "3", "--encoder", "lstm", "--encoder-hidden-size", "8"),
                List.of("--method", "prefix-tuning", "--virtual-tokens", "3"),
                List.of("--method", "prefix-tuning", "--virtual-tokens", "3", "--prefix-projection",
                        "--encoder-hidden-size", "16"),
                List.of("--method", "dynamic", "--virtual-tokens", "3", "--generator-hidden-size", "8"),
                List.of("--method", "composite", "--blocks", "BLOCKS"),
                List.of("--method", "prompt-tuning", "--virtual-tokens", "2", "--stage2-layers", "1", "--stage2-steps", "1"));
        List<Arguments> out = new ArrayList<>();
        for (String family : List.of("gpt2", "bloom")) {
            for (List<String> flags : methods) {
                out.add(Arguments.of(family, flags));
            }
        }
        return out.stream();
    }

    private static float[] parsed(JsonNode row) {
        float[] out = new float[row.size()];
        for (int v = 0; v < out.length; v++) {
            out[v] = Float.parseFloat(row.get(v).decimalValue().toString());
        }
        return out;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("decoderMethods")
    void decodersTrainEveryMethodAndUseTheAdapter(String family, List<String> flags) throws Exception {
        Path out = dir.resolve("adapter");
        List<String> args = new ArrayList<>(List.of("train", "--model", model(family).toString(), "--data",
                data.toString(), "--out", out.toString(), "--max-steps", "2", "--batch-size", "2", "--lr", "0.01"));
        for (String flag : flags) {
            args.add(flag.equals("BLOCKS") ? blocks.toString() : flag);
        }
        Result train = CliRun.run(args.toArray(String[]::new));
        assertEquals(0, train.exitCode(), train.err());
        assertTrue(train.out().contains("trained"), train.out());

        Result logits = CliRun.run("logits", "--model", model(family).toString(), "--adapter", out.toString(),
                "--prompt", "Give three tips", "--json");
        assertEquals(0, logits.exitCode(), logits.err());
        JsonNode json = JSON.readTree(logits.out());
        try (Model model = Model.load(model(family)); PromptModule prompt = PromptAdapter.load(out, model)) {
            long[] ids = model.tokenizer().encode("Give three tips", true);
            float[][] expected = model.logits(prompt, ids);
            assertEquals(expected.length, json.get("logits").size());
            for (int row = 0; row < expected.length; row++) {
                // The CLI computes on the same machine, shapes and thread count: bit-identical.
                assertArrayEquals(expected[row], parsed(json.get("logits").get(row)), family + " row " + row);
            }
        }
        Result generate = CliRun.run("generate", "--model", model(family).toString(), "--adapter",
                out.toString(), "--prompt", "Give three tips", "--max-new-tokens", "4", "--json");
        assertEquals(0, generate.exitCode(), generate.err());
        assertTrue(JSON.readTree(generate.out()).get("generated_ids").size() >= 1);
        // embed works on decoders too: their final hidden states, virtual rows first.
        Result embed = CliRun.run("embed", "--model", model(family).toString(), "--adapter", out.toString(),
                "--ids", "5,17", "--json");
        assertEquals(0, embed.exitCode(), embed.err());
        JsonNode hidden = JSON.readTree(embed.out());
        assertEquals(hidden.get("virtual_tokens").asInt() + 2, hidden.get("last_hidden_state").size());
    }

    @Test
    void bertPrintsMaskedLmLogitsAndHiddenStatesAndRefusesTheCausalTask() throws Exception {
        Result logits = CliRun.run("logits", "--model", model("bert").toString(), "--prompt",
                "It is [MASK].", "--json");
        assertEquals(0, logits.exitCode(), logits.err());
        JsonNode json = JSON.readTree(logits.out());
        assertEquals("[2,292,274,4,54,3]", json.get("ids").toString(), "[CLS] it is [MASK] . [SEP]");
        assertEquals(6, json.get("logits").size());
        assertEquals(361, json.get("logits").get(0).size(), "MLM logits over the vocabulary");

        Result embed = CliRun.run("embed", "--model", model("bert_base").toString(), "--ids", "2,292,274,3",
                "--json");
        assertEquals(0, embed.exitCode(), embed.err());
        JsonNode hidden = JSON.readTree(embed.out());
        assertEquals(4, hidden.get("last_hidden_state").size());
        assertEquals(64, hidden.get("last_hidden_state").get(0).size());
        try (Model model = Model.load(model("bert_base"))) {
            assertArrayEquals(model.hiddenStates(null, new long[] {2, 292, 274, 3}, null)[1],
                    parsed(hidden.get("last_hidden_state").get(1)));
        }

        Result noHead = CliRun.run("logits", "--model", model("bert_base").toString(), "--ids", "2,3");
        assertEquals(1, noHead.exitCode());
        assertTrue(noHead.err().contains("no LM or MLM head"), noHead.err());
        Result train = CliRun.run("train", "--model", model("bert").toString(), "--data", data.toString(),
                "--out", dir.resolve("x").toString(), "--max-steps", "1");
        assertEquals(1, train.exitCode());
        assertTrue(train.err().contains("encoder") && train.err().contains("decoders"), train.err());
        Result generate = CliRun.run("generate", "--model", model("bert").toString(), "--ids", "2,3");
        assertEquals(1, generate.exitCode());
        assertTrue(generate.err().contains("generation needs a decoder"), generate.err());
    }

    @Test
    void embedReadsARealOnnxEncoderWithTheTokenizerBesideIt() throws Exception {
        Path onnx = TestPaths.onnxModel("all-minilm-l6-v2");
        Result embed = CliRun.run("embed", "--model", onnx.toString(), "--text", "Hello world", "--json");
        assertEquals(0, embed.exitCode(), embed.err());
        JsonNode json = JSON.readTree(embed.out());
        assertEquals("[101,7592,2088,102]", json.get("ids").toString(), "[CLS] hello world [SEP]");
        assertEquals(384, json.get("last_hidden_state").get(0).size());
        Result explicit = CliRun.run("embed", "--model", onnx.toString(), "--tokenizer",
                onnx.resolveSibling("all-minilm-l6-v2-tokenizer.json").toString(), "--text", "Hello world", "--json");
        assertEquals(embed.out(), explicit.out());
    }

    @Test
    void idsWorkOnAFolderWithoutTokenizerFilesAndTextSaysWhatIsMissing() throws Exception {
        Path bare = dir.resolve("gpt2-no-tokenizer");
        Files.createDirectories(bare);
        for (String file : List.of("config.json", "model.safetensors")) {
            Files.copy(model("gpt2").resolve(file), bare.resolve(file));
        }
        Result logits = CliRun.run("logits", "--model", bare.toString(), "--ids", "38,438,343");
        assertEquals(0, logits.exitCode(), logits.err());
        assertTrue(logits.out().startsWith("token 0 (38) ->"), logits.out());
        Result generate = CliRun.run("generate", "--model", bare.toString(), "--ids", "38,438", "--json",
                "--max-new-tokens", "3");
        assertEquals(0, generate.exitCode(), generate.err());
        Result text = CliRun.run("logits", "--model", bare.toString(), "--prompt", "Hello");
        assertEquals(1, text.exitCode());
        assertTrue(text.err().contains("tokenizer.json") && text.err().contains("does not exist"), text.err());
    }

    @Test
    void gpt2RefusesMorePositionsThanNPositions() {
        // n_positions is 64: 60 input tokens + 10 new ones do not fit.
        StringBuilder ids = new StringBuilder("38");
        for (int i = 1; i < 60; i++) {
            ids.append(",").append(38 + i);
        }
        Result generate = CliRun.run("generate", "--model", model("gpt2").toString(), "--ids", ids.toString(),
                "--max-new-tokens", "10");
        assertEquals(1, generate.exitCode());
        assertTrue(generate.err().contains("exceed the model's 64") && generate.err().contains("n_positions"),
                generate.err());
    }
}
