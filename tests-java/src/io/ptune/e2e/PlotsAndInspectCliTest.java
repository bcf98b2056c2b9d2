package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun;
import io.ptune.TestPaths;
import io.ptune.CliRun.Result;
import io.ptune.report.Pngs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ptune train} draws its curves into --out (and not with --no-plots), a classification run
 * adds its dev metrics and confusion matrix, {@code eval --confusion-png} draws one, and
 * {@code ptune inspect} reports an adapter it trained, as text, JSON and a heat map, or fails with
 * one clear line.
 */
class PlotsAndInspectCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL = TestPaths.stories260k().toString();
    private static final String BERT = TestPaths.root().resolve("tests-java/resources/families/bert/model").toString();

    @TempDir
    Path dir;

    private Path alpaca() throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Tell a story about a cat.", "input": "", "output": "The cat was happy."}
                {"instruction": "Tell a story about a dog.", "input": "", "output": "The dog was happy."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                """);
        return data;
    }

    @Test
    void trainDrawsItsCurvesUnlessToldNot() throws Exception {
        Path data = alpaca();
        Path out = dir.resolve("adapter");
        Result trained = CliRun.run("train", "--model", MODEL, "--data", data.toString(), "--out",
                out.toString(), "--virtual-tokens", "4", "--init", "vocab", "--max-steps", "6", "--batch-size", "2",
                "--lr", "0.05");
        assertEquals(0, trained.exitCode(), trained.err());
        Pngs.assertChart(out.resolve("loss.png"), 800, 500);
        Pngs.assertChart(out.resolve("learning_rate.png"), 800, 500);
        assertFalse(Files.exists(out.resolve("dev_metrics.png")), "a causal-LM run has no dev metrics yet");
        assertTrue(Files.exists(out.resolve("adapter_config.json")));

        Path quiet = dir.resolve("quiet");
        Result noPlots = CliRun.run("train", "--model", MODEL, "--data", data.toString(), "--out",
                quiet.toString(), "--virtual-tokens", "4", "--max-steps", "2", "--batch-size", "2", "--no-plots");
        assertEquals(0, noPlots.exitCode(), noPlots.err());
        try (var files = Files.list(quiet)) {
            assertTrue(files.noneMatch(f -> f.toString().endsWith(".png")), "--no-plots draws nothing");
        }

        // The adapter just trained, inspected: text, JSON and the heat map.
        Result text = CliRun.run("inspect", out.toString(), "--model", MODEL, "--top-k", "3");
        assertEquals(0, text.exitCode(), text.err());
        assertTrue(text.out().contains("method:               prompt-tuning"), text.out());
        assertTrue(text.out().contains("trainable parameters: 256"), text.out());
        assertTrue(text.out().contains("vocabulary mean L2 norm"), text.out());
        Path png = dir.resolve("near.png");
        Result json = CliRun.run("inspect", out.toString(), "--model", MODEL, "--top-k", "3", "--json",
                "--png", png.toString());
        assertEquals(0, json.exitCode(), json.err());
        JsonNode root = JSON.readTree(json.out());
        assertEquals("PROMPT_TUNING", root.get("peft_type").asText());
        assertEquals(256, root.get("trainable_parameters").asLong());
        assertEquals(4, root.get("virtual_tokens").size());
        assertEquals(3, root.get("virtual_tokens").get(0).get("nearest").size());
        assertTrue(root.get("vocab_mean_norm").asDouble() > 0);
        Pngs.assertChart(png, 800, 300);

        Result filesOnly = CliRun.run("inspect", out.toString(), "--json");
        assertEquals(0, filesOnly.exitCode(), filesOnly.err());
        assertTrue(JSON.readTree(filesOnly.out()).get("vocab_mean_norm").isNull());
    }

    @Test
    void inspectFailsWithOneLineNamingTheProblem() throws Exception {
        Path missing = dir.resolve("no-such-adapter");
        Result result = CliRun.run("inspect", missing.toString(), "--model", MODEL);
        assertEquals(1, result.exitCode());
        assertTrue(result.err().startsWith("error: ") && result.err().contains(missing.toString()), result.err());

        Path adapter = TestPaths.peftResources().resolve("ours/prompt_tuning");
        Path bloom = TestPaths.root().resolve("tests-java/resources/families/bloom/model");
        Result otherModel = CliRun.run("inspect", adapter.toString(), "--model", bloom.toString());
        assertEquals(1, otherModel.exitCode());
        assertTrue(otherModel.err().startsWith("error: ")
                && otherModel.err().contains(adapter.resolve("adapter_config.json").toString()), otherModel.err());
        assertEquals(1, otherModel.err().strip().lines().count(), otherModel.err());

        Path truncated = dir.resolve("truncated");
        Files.createDirectories(truncated);
        Files.copy(adapter.resolve("adapter_config.json"), truncated.resolve("adapter_config.json"));
        byte[] weights = Files.readAllBytes(adapter.resolve("adapter_model.safetensors"));
        Files.write(truncated.resolve("adapter_model.safetensors"), Arrays.copyOf(weights, weights.length / 2));
        Result corrupt = CliRun.run("inspect", truncated.toString());
        assertEquals(1, corrupt.exitCode());
        assertTrue(corrupt.err().startsWith("error: ")
                && corrupt.err().contains(truncated.resolve("adapter_model.safetensors").toString()), corrupt.err());

        Result pngWithoutModel = CliRun.run("inspect", adapter.toString(), "--png", "x.png");
        assertEquals(1, pngWithoutModel.exitCode());
        assertTrue(pngWithoutModel.err().contains("--png needs --model"), pngWithoutModel.err());
    }

    @Test
    void classificationAddsDevMetricsAndTheConfusionMatrix() throws Exception {
        Path train = TinySentiment.writeTsv(dir.resolve("train.tsv"));
        Path out = dir.resolve("classifier");
        Result trained = CliRun.run("train", "--task", "classify", "--model", BERT, "--data", train.toString(),
                "--dev", train.toString(), "--out", out.toString(), "--epochs", "2", "--batch-size", "4",
                "--method", "prompt-tuning", "--virtual-tokens", "2");
        assertEquals(0, trained.exitCode(), trained.err());
        for (String chart : new String[] {"loss.png", "learning_rate.png", "dev_metrics.png"}) {
            Pngs.assertChart(out.resolve(chart), 800, 500);
        }
        Pngs.assertChart(out.resolve("confusion_matrix.png"), 800, 600);

        Path png = dir.resolve("eval-cm.png");
        Result eval = CliRun.run("eval", "--model", BERT, "--adapter", out.toString(), "--data",
                train.toString(), "--confusion-png", png.toString());
        assertEquals(0, eval.exitCode(), eval.err());
        Pngs.assertChart(png, 800, 600);
    }
}
