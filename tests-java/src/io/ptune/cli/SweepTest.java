package io.ptune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/** Early stopping on a dev set, and {@code ptune sweep} end to end (trials, csv, plot, resume). */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class SweepTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL = TestPaths.stories260k().toString();

    @TempDir
    Path dir;

    /** 16 training examples and 8 held out, from the shipped demo data. */
    private Path writeRunConfig(String extra) throws Exception {
        JsonNode all = JSON.readTree(TestPaths.root().resolve("examples/data/max_the_dog.json").toFile());
        List<JsonNode> items = new ArrayList<>();
        all.forEach(items::add);
        Files.writeString(dir.resolve("train.json"), JSON.writeValueAsString(items.subList(0, 16)));
        Files.writeString(dir.resolve("dev.json"), JSON.writeValueAsString(items.subList(16, 24)));
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, "model: " + MODEL + "\ndata: train.json\ndev: dev.json\nbatch-size: 4\n"
                + "max-length: 64\nseed: 1\n" + extra);
        return yaml;
    }

    @Test
    void earlyStoppingKeepsTheBestPrompt() throws Exception {
        Path yaml = writeRunConfig("max-steps: 30\neval-every: 2\npatience: 2\nvirtual-tokens: 4\n");
        // Training data unlike the dev stories: the prompt learns to answer "Red.", the dev loss soon
        // rises, and the run stops early.
        StringBuilder colors = new StringBuilder("[");
        for (int i = 0; i < 16; i++) {
            colors.append(i == 0 ? "" : ",").append("{\"instruction\": \"Name a color.\", \"input\": \"\", "
                    + "\"output\": \"Red. Red. Red. Red.\"}");
        }
        Files.writeString(dir.resolve("train.json"), colors.append("]").toString());
        Path out = dir.resolve("adapter");
        CliRun.Result result = CliRun.run("train", "--config", yaml.toString(), "--out", out.toString(),
                "--lr", "0.3", "--warmup-steps", "0", "--schedule", "constant");
        assertEquals(0, result.exitCode(), result.err());
        JsonNode results = JSON.readTree(out.resolve("train_results.json").toFile());
        assertTrue(results.get("stopped_early").asBoolean(), results.toString());
        long steps = results.get("steps").asLong();
        long bestStep = results.get("best_step").asLong();
        assertTrue(steps < 30, results.toString());
        assertEquals(steps, bestStep + 2 * 2, "stops after patience x eval-every steps without a better dev loss");
        assertEquals(results.get("best").asDouble(), results.get("kept").asDouble());

        // The written adapter is the best prompt: its dev loss, measured afresh, is the best one.
        try (Model model = Model.load(TestPaths.stories260k());
                PromptModule prompt = PromptAdapter.loadForTraining(out, model);
                Trainer trainer = new Trainer(model, prompt, TrainingConfig.builder().maxSteps(1).batchSize(4)
                        .maxLength(64).build(), AlpacaDataset.load(dir.resolve("train.json")))) {
            double devLoss = trainer.evaluate(AlpacaDataset.load(dir.resolve("dev.json")));
            assertEquals(results.get("best").asDouble(), devLoss, 1e-5 * devLoss);
        }
    }

    @Test
    void patienceWithoutADevSetIsAClearError() throws Exception {
        writeRunConfig("");
        CliRun.Result result = CliRun.run("train", "--model", MODEL, "--data",
                dir.resolve("train.json").toString(), "--out", dir.resolve("o").toString(), "--patience", "2",
                "--max-steps", "2");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("--patience: needs a dev set to watch (--dev FILE"), result.err());
    }

    @Test
    void sweepRunsTheGridKeepsTheBestAndResumesAfterAKill() throws Exception {
        Path yaml = writeRunConfig("max-steps: 8\neval-every: 2\n");
        Path out = dir.resolve("sweep");
        String[] args = {"sweep", "--config", yaml.toString(), "--out", out.toString(), "--virtual-tokens", "2,4",
            "--lr", "1e-3:1e-1:log:2", "--patience", "2", "--threads", "1"};

        // Killed as soon as the first trial is in the table, then run again.
        Process child = new ProcessBuilder(TestPaths.ptuneCommand(List.of(args))).redirectErrorStream(true)
                .redirectOutput(dir.resolve("killed.log").toFile()).start();
        Path table = out.resolve("sweep.csv");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (child.isAlive() && !Files.exists(table) && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        child.destroyForcibly().waitFor();
        assertTrue(Files.exists(table), Files.readString(dir.resolve("killed.log")));
        List<String> before = Files.readAllLines(table);
        assertTrue(before.size() >= 2 && before.size() < 5, before.toString());

        CliRun.Result result = CliRun.run(args);
        assertEquals(0, result.exitCode(), result.err());
        assertTrue(result.err().contains("resuming the sweep in " + out), result.err());
        List<String> rows = Files.readAllLines(table);
        assertEquals(5, rows.size(), rows.toString());
        assertEquals(before.get(1), rows.get(1), "a finished trial is not run again");
        assertEquals(List.of("vt2-lr0.001", "vt2-lr0.1", "vt4-lr0.001", "vt4-lr0.1"),
                rows.subList(1, 5).stream().map(r -> r.split(",")[0]).toList());
        double best = Double.POSITIVE_INFINITY;
        String bestTrial = null;
        for (String row : rows.subList(1, 5)) {
            String[] f = row.split(",");
            assertEquals("ok", f[3], row);
            assertEquals("dev_loss", f[4], row);
            if (Double.parseDouble(f[5]) < best) {
                best = Double.parseDouble(f[5]);
                bestTrial = f[0];
            }
        }
        assertTrue(result.out().contains("best " + bestTrial + ": dev_loss"), result.out());
        JsonNode kept = JSON.readTree(out.resolve("best/train_results.json").toFile());
        assertEquals(best, kept.get("kept").asDouble(), 0.0);
        assertTrue(Files.exists(out.resolve("best/adapter_model.safetensors")));
        try (var trials = Files.list(out.resolve("trials"))) {
            for (Path trial : trials.toList()) {
                assertFalse(Files.exists(trial.resolve("adapter")), "only the best adapter is kept: " + trial);
                assertTrue(Files.exists(trial.resolve("train.log")));
            }
        }
        BufferedImage plot = ImageIO.read(out.resolve("sweep.png").toFile());
        assertTrue(plot.getWidth() >= 600, "plot width " + plot.getWidth());

        // The same sweep again has nothing left to do; another grid in the same folder is refused.
        result = CliRun.run(args);
        assertEquals(0, result.exitCode(), result.err());
        assertTrue(result.err().contains("4 of 4 trials done"), result.err());
        result = CliRun.run("sweep", "--config", yaml.toString(), "--out", out.toString(), "--lr", "0.5");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("holds another sweep"), result.err());
    }

    @Test
    void sweepNeedsADevSet() throws Exception {
        Path yaml = dir.resolve("nodev.yaml");
        Files.writeString(yaml, "model: " + MODEL + "\ndata: x.json\n");
        CliRun.Result result = CliRun.run("sweep", "--config", yaml.toString(), "--out",
                dir.resolve("s").toString(), "--lr", "1e-3,1e-2");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("has no dev set; a sweep ranks trials on one"), result.err());
        result = CliRun.run("sweep", "--config", yaml.toString(), "--out", dir.resolve("s").toString(),
                "--lr", "1e-2:1e-3:log:3");
        assertTrue(result.err().contains("no dev set") || result.err().contains("LOW <= HIGH"), result.err());
        assertEquals(List.of(1e-4, 1e-3, 1e-2), SweepValues.parse("1e-4:1e-2:log:3"));
        assertEquals(List.of(0.1, 0.2, 0.3), SweepValues.parse("0.1:0.3:lin:3"));
    }
}
