package io.ptune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CheckpointException;
import io.ptune.CliRun;
import io.ptune.InvalidConfigException;
import io.ptune.TestPaths;
import io.ptune.data.AlpacaDataset;
import io.ptune.model.Model;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingCheckpoint;
import io.ptune.train.TrainingConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * Early stopping across checkpoints: a run killed and resumed with {@code --resume} stops at the
 * same step and writes the same adapter and results as the uninterrupted run, also when it is
 * resumed from the checkpoint of its stop; the best prompt in a checkpoint is covered by the
 * manifest; a dev set that differs from the checkpoint's run is refused naming {@code dev}.
 */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class EarlyStoppingResumeTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /**
     * 16 training examples that all answer "Red." and 8 dev stories of the demo data: the dev loss
     * soon rises and the run stops early (as in SweepTest).
     */
    private void writeData() throws IOException {
        JsonNode all = JSON.readTree(TestPaths.root().resolve("examples/data/max_the_dog.json").toFile());
        List<JsonNode> items = new ArrayList<>();
        all.forEach(items::add);
        Files.writeString(dir.resolve("dev.json"), JSON.writeValueAsString(items.subList(16, 24)));
        StringBuilder colors = new StringBuilder("[");
        for (int i = 0; i < 16; i++) {
            colors.append(i == 0 ? "" : ",").append("{\"instruction\": \"Name a color.\", \"input\": \"\", "
                    + "\"output\": \"Red. Red. Red. Red.\"}");
        }
        Files.writeString(dir.resolve("train.json"), colors.append("]").toString());
    }

    /** {@code ptune train --resume} of the early-stopping run into {@code out} with checkpoints in {@code checkpoints}. */
    private CliRun.Result train(Path out, Path checkpoints) {
        return CliRun.run("train", "--model", TestPaths.stories260k().toString(),
                "--data", dir.resolve("train.json").toString(), "--dev", dir.resolve("dev.json").toString(),
                "--out", out.toString(), "--batch-size", "4", "--max-length", "64", "--seed", "1",
                "--max-steps", "30", "--eval-every", "2", "--patience", "2", "--virtual-tokens", "4",
                "--lr", "0.3", "--warmup-steps", "0", "--schedule", "constant", "--threads", "1",
                "--save-every", "4", "--keep-checkpoints", "30", "--checkpoint-dir", checkpoints.toString(),
                "--resume", "--no-plots");
    }

    private static List<String> checkpointNames(Path checkpoints) throws IOException {
        try (Stream<Path> entries = Files.list(checkpoints)) {
            return entries.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /** A copy of {@code checkpoint} alone in a new checkpoint folder {@code name}. */
    private Path copyAlone(Path checkpoint, String name) throws IOException {
        Path folder = dir.resolve(name);
        Path target = folder.resolve(checkpoint.getFileName());
        try (Stream<Path> paths = Files.walk(checkpoint)) {
            for (Path p : paths.toList()) {
                Path copy = target.resolve(checkpoint.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(copy);
                } else {
                    Files.copy(p, copy);
                }
            }
        }
        return folder;
    }

    private static void assertSameOutput(Path expected, Path actual) throws IOException {
        assertArrayEquals(Files.readAllBytes(expected.resolve("adapter_model.safetensors")),
                Files.readAllBytes(actual.resolve("adapter_model.safetensors")), "the kept adapter differs");
        assertEquals(JSON.readTree(expected.resolve("train_results.json").toFile()),
                JSON.readTree(actual.resolve("train_results.json").toFile()));
    }

    @Test
    void aResumedRunStopsWhereTheUninterruptedRunStops() throws Exception {
        writeData();
        Path straightOut = dir.resolve("straight");
        Path straightCheckpoints = dir.resolve("straight-checkpoints");
        CliRun.Result straight = train(straightOut, straightCheckpoints);
        assertEquals(0, straight.exitCode(), straight.err());
        JsonNode results = JSON.readTree(straightOut.resolve("train_results.json").toFile());
        assertTrue(results.get("stopped_early").asBoolean(), results.toString());
        long stop = results.get("steps").asLong();
        long best = results.get("best_step").asLong();
        assertEquals(stop, best + 2 * 2, results.toString());

        // The stop is checkpointed although it is no multiple of --save-every, and says so.
        assertTrue(stop % 4 != 0, "stop " + stop);
        Path stopCheckpoint = straightCheckpoints.resolve(TrainingCheckpoint.directoryName(stop));
        TrainingCheckpoint.State stopState = TrainingCheckpoint.readState(stopCheckpoint);
        assertNotNull(stopState.dev());
        assertTrue(stopState.dev().stoppedEarly());
        assertEquals(best, stopState.dev().bestStep());
        assertEquals(results.get("best").asDouble(), stopState.dev().best());
        assertEquals(2, stopState.dev().evaluationsSince());
        assertEquals(8, stopState.dev().devExamples());
        // The last checkpoint before the stop lies between the best evaluation and the stop.
        long before = stop / 4 * 4;
        assertTrue(before > best && before < stop, "checkpoint " + before);
        Path beforeCheckpoint = straightCheckpoints.resolve(TrainingCheckpoint.directoryName(before));
        TrainingCheckpoint.State beforeState = TrainingCheckpoint.readState(beforeCheckpoint);
        assertFalse(beforeState.dev().stoppedEarly());
        assertEquals(best, beforeState.dev().bestStep());
        assertEquals(1, beforeState.dev().evaluationsSince());
        assertTrue(Files.isRegularFile(beforeCheckpoint.resolve(TrainingCheckpoint.BEST_PROMPT_FILE)));

        // Killed after the checkpoint before the stop: the restarted job ends bit for bit the same.
        Path resumedCheckpoints = copyAlone(beforeCheckpoint, "resumed-checkpoints");
        Path resumedOut = dir.resolve("resumed");
        CliRun.Result resumed = train(resumedOut, resumedCheckpoints);
        assertEquals(0, resumed.exitCode(), resumed.err());
        assertSameOutput(straightOut, resumedOut);
        assertEquals(List.of(TrainingCheckpoint.directoryName(before), TrainingCheckpoint.directoryName(stop)),
                checkpointNames(resumedCheckpoints));

        // Killed after the stop's checkpoint (the adapter maybe unwritten): no more training, the same adapter.
        Path afterCheckpoints = copyAlone(stopCheckpoint, "after-checkpoints");
        Path afterOut = dir.resolve("after");
        CliRun.Result after = train(afterOut, afterCheckpoints);
        assertEquals(0, after.exitCode(), after.err());
        assertSameOutput(straightOut, afterOut);
        assertEquals(List.of(TrainingCheckpoint.directoryName(stop)), checkpointNames(afterCheckpoints),
                "a run that had stopped early trains no further");
        assertTrue(after.out().contains("trained " + stop + " steps"), after.out());
    }

    @Test
    void aDamagedBestPromptIsCaughtByTheManifest() throws Exception {
        writeData();
        Path checkpoints = dir.resolve("checkpoints");
        CliRun.Result run = train(dir.resolve("out"), checkpoints);
        assertEquals(0, run.exitCode(), run.err());
        Path newest = TrainingCheckpoint.resolve(checkpoints);
        Path bestPrompt = newest.resolve(TrainingCheckpoint.BEST_PROMPT_FILE);
        JsonNode manifest = JSON.readTree(newest.resolve(TrainingCheckpoint.MANIFEST_FILE).toFile());
        List<String> listed = new ArrayList<>();
        manifest.get("files").forEach(entry -> listed.add(entry.get("path").asText()));
        assertTrue(listed.contains(TrainingCheckpoint.BEST_PROMPT_FILE), listed.toString());

        byte[] bytes = Files.readAllBytes(bestPrompt);
        bytes[bytes.length - 1] ^= 0x10;
        Files.write(bestPrompt, bytes);
        CheckpointException damaged = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(newest));
        assertTrue(damaged.getMessage().startsWith(bestPrompt + " does not match its SHA-256"), damaged.getMessage());
        // --resume skips it for the newest valid one, --resume-from on it names the file.
        assertTrue(TrainingCheckpoint.newestValid(checkpoints).map(p -> !p.equals(newest)).orElse(true));
        CliRun.Result from = CliRun.run("train", "--model", TestPaths.stories260k().toString(),
                "--data", dir.resolve("train.json").toString(), "--dev", dir.resolve("dev.json").toString(),
                "--out", dir.resolve("from").toString(), "--resume-from", newest.toString(), "--batch-size", "4",
                "--max-length", "64", "--seed", "1", "--max-steps", "30", "--eval-every", "2", "--patience", "2",
                "--lr", "0.3", "--warmup-steps", "0", "--schedule", "constant", "--threads", "1");
        assertEquals(1, from.exitCode());
        assertTrue(from.err().contains(bestPrompt.toString()), from.err());
        assertFalse(Files.exists(dir.resolve("from").resolve("adapter_model.safetensors")));

        // A missing best prompt is named too.
        Files.delete(bestPrompt);
        CheckpointException missing = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(newest));
        assertTrue(missing.getMessage().startsWith(bestPrompt + " is missing"), missing.getMessage());
    }

    @Test
    void aResumeWithAnotherDevSetFailsNamingDev() throws Exception {
        writeData();
        AlpacaDataset train = AlpacaDataset.load(dir.resolve("train.json"));
        AlpacaDataset dev = AlpacaDataset.load(dir.resolve("dev.json"));
        TrainingConfig config = TrainingConfig.builder().maxSteps(4).batchSize(4).maxLength(64).evalEvery(2)
                .build();
        PromptTuningConfig prompt = PromptTuningConfig.builder().numVirtualTokens(4).seed(1).build();
        Path withDev = dir.resolve("with-dev");
        Path withoutDev = dir.resolve("without-dev");
        try (Model model = Model.load(TestPaths.stories260k())) {
            try (Trainer trainer = Trainer.create(model, prompt, config, train)) {
                trainer.evaluateOn(dev).saveCheckpoints(withDev, 2, 1);
                trainer.train();
            }
            try (Trainer trainer = Trainer.create(model, prompt, config, train)) {
                trainer.saveCheckpoints(withoutDev, 2, 1);
                trainer.train();
            }
            assertNull(TrainingCheckpoint.readState(TrainingCheckpoint.resolve(withoutDev)).dev(),
                    "a run without a dev set records no early-stopping state");

            try (Trainer resumed = Trainer.resume(model, withDev, config, train)) {
                InvalidConfigException missing = assertThrows(InvalidConfigException.class, resumed::train);
                assertEquals("dev", missing.field());
                assertTrue(missing.getMessage().contains("is not given here"), missing.getMessage());
            }
            try (Trainer resumed = Trainer.resume(model, withoutDev, config, train)) {
                resumed.evaluateOn(dev);
                InvalidConfigException extra = assertThrows(InvalidConfigException.class, resumed::train);
                assertEquals("dev", extra.field());
                assertTrue(extra.getMessage().contains("evaluated no dev set"), extra.getMessage());
            }
            try (Trainer resumed = Trainer.resume(model, withDev, config, train)) {
                resumed.evaluateOn(dev.head(5));
                InvalidConfigException smaller = assertThrows(InvalidConfigException.class, resumed::train);
                assertEquals("dev", smaller.field());
                assertTrue(smaller.getMessage().contains("with 5 examples here"), smaller.getMessage());
                assertTrue(smaller.getMessage().contains("continues evaluated 8"), smaller.getMessage());
            }
            // The same dev set resumes (to the end: the checkpoint is the last step).
            try (Trainer resumed = Trainer.resume(model, withDev, config, train)) {
                resumed.evaluateOn(dev);
                assertEquals(4, resumed.train().steps());
            }
        }
    }
}
