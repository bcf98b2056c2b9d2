package io.ptune.e2e;

import static io.ptune.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun.Result;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `ptune train`, `generate` and `logits` on the real model, as a user runs them. */
class CliEndToEndTest {
    /** Decimals kept exact, so that each printed float is parsed once, straight to float. */
    private static final ObjectMapper JSON =
            new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

    @TempDir
    Path dir;


    private static final String MODEL = TestPaths.stories260k().toString();

    @Test
    void generateJsonPrintsOneObject() throws Exception {
        Result result = run("generate", "--model", MODEL, "--prompt", "Once upon a time", "--max-new-tokens", "20",
                "--json");
        assertEquals(0, result.exitCode(), result.err());
        JsonNode json = JSON.readTree(result.out());
        assertEquals(List.of("prompt_ids", "generated_ids", "text"), iterableToList(json.fieldNames()));
        assertEquals("[1,403,407,261,378]", json.get("prompt_ids").toString());
        assertEquals(20, json.get("generated_ids").size());
        assertTrue(json.get("text").asText().startsWith(", there was a little girl named Lily."), result.out());
        assertEquals(1, result.out().strip().lines().count(), "exactly one line on stdout");
    }

    @Test
    void checkpointsThenResumeGiveTheUninterruptedAdapter() throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Tell a story about a cat.", "input": "", "output": "The cat was happy."}
                {"instruction": "Tell a story about a dog.", "input": "", "output": "The dog was happy."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                """);
        String[] common = {"--model", MODEL, "--data", data.toString(), "--max-steps", "4", "--batch-size", "2",
            "--lr", "0.05", "--warmup-steps", "1"};
        Path straight = dir.resolve("straight");
        Result first = run(concat(new String[] {"train", "--out", straight.toString(), "--virtual-tokens", "4",
            "--save-every", "2", "--keep-checkpoints", "1"}, common));
        assertEquals(0, first.exitCode(), first.err());
        Path checkpoints = dir.resolve("straight-checkpoints");
        assertEquals(List.of("checkpoint-4"), Files.list(checkpoints).map(p -> p.getFileName().toString()).toList());

        Path shortRun = dir.resolve("short");
        Result interrupted = run(concat(new String[] {"train", "--out", shortRun.toString(), "--virtual-tokens", "4",
            "--save-every", "2", "--checkpoint-dir", dir.resolve("mine").toString()}, common));
        assertEquals(0, interrupted.exitCode(), interrupted.err());
        Path resumedOut = dir.resolve("resumed");
        Result resumed = run(concat(new String[] {"train", "--out", resumedOut.toString(), "--resume-from",
            dir.resolve("mine").resolve("checkpoint-2").toString()}, common));
        assertEquals(0, resumed.exitCode(), resumed.err());
        assertTrue(resumed.out().contains("trained 4 steps"), resumed.out());
        // A resumed run on the same machine ends bit for bit where the straight run ends.
        assertArrayEquals(Safetensors.open(straight.resolve("adapter_model.safetensors")).readFloat("prompt_embeddings").data(),
                Safetensors.open(resumedOut.resolve("adapter_model.safetensors")).readFloat("prompt_embeddings").data());

        Result mixed = run(concat(new String[] {"train", "--out", resumedOut.toString(), "--resume-from",
            checkpoints.toString(), "--method", "p-tuning"}, common));
        assertEquals(1, mixed.exitCode());
        assertTrue(mixed.err().contains("--method: is p-tuning here but prompt-tuning in the checkpoint"), mixed.err());
        // Prompt flags may be given again (a re-run of the same command); only a differing one fails.
        Path again = dir.resolve("again");
        Result repeated = run(concat(new String[] {"train", "--out", again.toString(), "--resume-from",
            dir.resolve("mine").resolve("checkpoint-2").toString(), "--virtual-tokens", "4"}, common));
        assertEquals(0, repeated.exitCode(), repeated.err());
        assertArrayEquals(Files.readAllBytes(resumedOut.resolve("adapter_model.safetensors")),
                Files.readAllBytes(again.resolve("adapter_model.safetensors")));
        Result longer = run(concat(new String[] {"train", "--out", again.toString(), "--resume-from",
            checkpoints.toString(), "--virtual-tokens", "5"}, common));
        assertEquals(1, longer.exitCode());
        assertTrue(longer.err().contains("--virtual-tokens: is 5 here but 4 in the checkpoint"), longer.err());
        Result otherBatch = run(concat(new String[] {"train", "--out", resumedOut.toString(), "--resume-from",
            checkpoints.toString(), "--grad-accum", "2"}, common));
        assertEquals(1, otherBatch.exitCode());
        assertTrue(otherBatch.err().contains("--grad-accum: is 2 here but 1 in the checkpoint"), otherBatch.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void trainThenUseTheAdapter() throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Tell a story about a cat.", "input": "", "output": "The cat was happy."}
                {"instruction": "Tell a story about a dog.", "input": "", "output": "The dog was happy."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
                """);
        Path out = dir.resolve("adapter");
        Path metrics = dir.resolve("metrics.jsonl");
        Result train = run("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--virtual-tokens", "4", "--init", "text:\"Tell a story\"", "--max-steps", "3", "--batch-size", "2",
                "--lr", "0.01", "--schedule", "cosine", "--warmup-steps", "1", "--metrics-out", metrics.toString());
        assertEquals(0, train.exitCode(), train.err());
        assertTrue(train.out().contains("trained 3 steps"), train.out());
        List<String> lines = Files.readAllLines(metrics);
        assertEquals(3, lines.size());
        for (int i = 0; i < 3; i++) {
            JsonNode line = JSON.readTree(lines.get(i));
            assertEquals(List.of("step", "loss", "lr", "tokens_per_s"), iterableToList(line.fieldNames()));
            assertEquals(i + 1, line.get("step").asInt());
        }
        JsonNode config = JSON.readTree(out.resolve("adapter_config.json").toFile());
        assertEquals("TEXT", config.get("prompt_tuning_init").asText());
        assertEquals("Tell a story", config.get("prompt_tuning_init_text").asText());

        Result generate = run("generate", "--model", MODEL, "--adapter", out.toString(), "--ids", "1,403",
                "--max-new-tokens", "5", "--json");
        assertEquals(0, generate.exitCode(), generate.err());
        assertEquals("[1,403]", JSON.readTree(generate.out()).get("prompt_ids").toString());

        // logits --json carries every float exactly.
        Result logits = run("logits", "--model", MODEL, "--adapter", out.toString(), "--ids", "1,403,407", "--json");
        assertEquals(0, logits.exitCode(), logits.err());
        JsonNode json = JSON.readTree(logits.out());
        assertEquals(List.of("ids", "virtual_tokens", "logits"), iterableToList(json.fieldNames()));
        assertEquals(4, json.get("virtual_tokens").asInt());
        assertEquals(7, json.get("logits").size());
        try (Model model = Model.load(TestPaths.stories260k());
                PromptModule prompt = PromptAdapter.load(out, model)) {
            float[][] expected = model.logits(prompt, new long[] {1, 403, 407});
            for (int row = 0; row < expected.length; row++) {
                JsonNode printed = json.get("logits").get(row);
                assertEquals(512, printed.size());
                float[] parsed = new float[512];
                for (int v = 0; v < 512; v++) {
                    parsed[v] = Float.parseFloat(printed.get(v).decimalValue().toString());
                }
                // The CLI process computes on the same machine, shapes and thread count: bit-identical.
                assertArrayEquals(expected[row], parsed, "row " + row);
            }
        }
    }

    @Test
    void divergedTrainingExitsWithOneAndWritesNoAdapter() throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, "{\"instruction\":\"Tell me a story.\",\"input\":\"\","
                + "\"output\":\"Once upon a time, there was a little dog named Max.\"}\n");
        Path out = dir.resolve("adapter");
        // 1e39 overflows fp32 in the first AdamW update, so the second step's loss is NaN.
        Result result = run("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--lr", "1e39", "--max-steps", "3", "--batch-size", "1");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("training diverged at optimizer step 2"), result.err());
        assertTrue(result.err().contains("lower the learning rate"), result.err());
        assertFalse(Files.exists(out), "no adapter may be written for a diverged run");
    }

    @Test
    void logitsRejectIdsOutsideTheVocabulary() {
        Result result = run("logits", "--model", MODEL, "--ids", "1,600", "--json");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("error: token id 600"), result.err());
    }

    @Test
    void adapterForAnotherModelIsRejected() throws Exception {
        Path adapter = dir.resolve("wide");
        Files.createDirectories(adapter);
        Files.writeString(adapter.resolve("adapter_config.json"),
                "{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 1, \"token_dim\": 128}");
        Result result = run("generate", "--model", MODEL, "--adapter", adapter.toString(), "--ids", "1");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("another model"), result.err());
    }

    private static List<String> iterableToList(Iterator<String> names) {
        List<String> list = new ArrayList<>();
        names.forEachRemaining(list::add);
        return list;
    }
}
