package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.CheckpointException;
import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.Stories260kTest;
import io.ptune.TestMethods;
import io.ptune.TestPaths;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.BatchIterator;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.internal.JsonFiles;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A run stopped at a checkpoint and resumed in a new trainer ends exactly where the uninterrupted
 * run ends: same parameters bit for bit, same losses at every later step.
 */
class TrainingCheckpointTest extends Stories260kTest {
    private static AlpacaDataset data;

    @TempDir
    Path dir;

    @BeforeAll
    static void loadData() {
        // Batches of 3 from the examples that fit maxLength: steps of 2 micro-batches cross epochs.
        data = AlpacaDataset.load(TestPaths.alpacaEn()).head(20);
    }

    private static TrainingConfig.Builder config() {
        return TrainingConfig.builder().maxSteps(6).batchSize(3).gradAccum(2).maxLength(48).learningRate(0.02)
                .warmupSteps(2).weightDecay(0.01);
    }

    /** Trains {@code trainer} and returns the parameters afterwards with the step losses. */
    private static Map<String, float[]> train(Trainer trainer, List<Double> losses) {
        trainer.addListener(m -> losses.add(m.loss()));
        trainer.train();
        PromptModule prompt = trainer.prompt();
        return prompt.readAll(prompt.parameterNames());
    }

    private static void assertSameParameters(Map<String, float[]> expected, Map<String, float[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name), actual.get(name), name + " differs after resuming");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"prompt-tuning", "p-tuning-mlp", "prefix-projection", "dynamic"})
    void resumingFromACheckpointEndsWhereTheUninterruptedRunEnds(String method) {
        assertResumeIsExact(TestMethods.get(method));
    }

    @Test
    void lstmDropoutMasksAreReproducedOnResume() {
        assertResumeIsExact(PTuningConfig.builder().numVirtualTokens(4).encoderType(PromptEncoderType.LSTM)
                .encoderHiddenSize(16).encoderNumLayers(2).encoderDropout(0.5).seed(9).build());
    }

    private void assertResumeIsExact(PromptMethodConfig method) {
        TrainingConfig cfg = config().build();
        List<Double> straightLosses = new ArrayList<>();
        Map<String, float[]> straight;
        Path checkpoints = dir.resolve("checkpoints");
        try (Trainer trainer = Trainer.create(model, method, cfg, data)) {
            trainer.saveCheckpoints(checkpoints, 3, 5);
            straight = train(trainer, straightLosses);
        }
        assertTrue(Files.isDirectory(checkpoints.resolve("checkpoint-3")));
        assertTrue(Files.isDirectory(checkpoints.resolve("checkpoint-6")));

        List<Double> resumedLosses = new ArrayList<>();
        try (Trainer resumed = Trainer.resume(model, checkpoints.resolve("checkpoint-3"), cfg, data)) {
            assertSameParameters(straight, train(resumed, resumedLosses));
        }
        assertEquals(straightLosses.subList(3, 6), resumedLosses);
    }

    @Test
    void resumingInTheSecondStageRestoresTheUnfrozenLayers() {
        TrainingConfig cfg = config().maxSteps(3)
                .twoStage(TwoStageConfig.builder().layers(1).learningRate(1e-3).steps(3).build()).build();
        List<Double> straightLosses = new ArrayList<>();
        Map<String, float[]> straight;
        Path checkpoints = dir.resolve("two-stage");
        try (Trainer trainer = Trainer.create(model, TestMethods.get("prompt-tuning"), cfg, data)) {
            trainer.saveCheckpoints(checkpoints, 2, 3);
            straight = train(trainer, straightLosses);
        }
        // checkpoint-2 is in stage 1, checkpoint-4 in stage 2; resume from the latter (the newest but one).
        List<Double> resumedLosses = new ArrayList<>();
        try (Trainer resumed = Trainer.resume(model, checkpoints.resolve("checkpoint-4"), cfg, data)) {
            assertEquals(1, resumed.prompt().unfrozenLayers());
            assertSameParameters(straight, train(resumed, resumedLosses));
        }
        assertEquals(straightLosses.subList(4, 6), resumedLosses);
        // From the end of stage 1 too.
        resumedLosses.clear();
        try (Trainer resumed = Trainer.resume(model, checkpoints.resolve("checkpoint-2"), cfg, data)) {
            assertSameParameters(straight, train(resumed, resumedLosses));
        }
        assertEquals(straightLosses.subList(2, 6), resumedLosses);
    }

    @Test
    void keepsTheNewestCheckpointsAndResolvesTheLatest() throws IOException {
        Path checkpoints = dir.resolve("kept");
        long perEpoch;
        try (Trainer trainer = Trainer.create(model, TestMethods.get("prompt-tuning"), config().build(), data)) {
            trainer.saveCheckpoints(checkpoints, 1, 2);
            trainer.train();
            perEpoch = BatchIterator.batchesPerEpoch(trainer.numExamples(), 3);
        }
        try (Stream<Path> entries = Files.list(checkpoints)) {
            assertEquals(List.of("checkpoint-5", "checkpoint-6"),
                    entries.map(p -> p.getFileName().toString()).sorted().toList());
        }
        assertEquals(checkpoints.resolve("checkpoint-6"), TrainingCheckpoint.resolve(checkpoints));
        TrainingCheckpoint.State state = TrainingCheckpoint.readState(checkpoints.resolve("checkpoint-6"));
        assertEquals(6, state.step());
        assertEquals(1, state.stage());
        // 6 steps of 2 micro-batches: 12 micro-batches, cut into epochs of perEpoch.
        assertEquals((12 - 1) / perEpoch, state.epoch());
        assertEquals(12 - state.epoch() * perEpoch, state.consumedMicroBatches());
    }

    @Test
    void aResumeWithOtherSettingsOrADamagedCheckpointFailsClearly() throws IOException {
        Path checkpoints = dir.resolve("bad");
        try (Trainer trainer = Trainer.create(model, TestMethods.get("p-tuning-mlp"), config().build(), data)) {
            trainer.saveCheckpoints(checkpoints, 3, 2);
            trainer.train();
        }
        Path checkpoint = checkpoints.resolve("checkpoint-3");
        InvalidConfigException other = assertThrows(InvalidConfigException.class,
                () -> Trainer.resume(model, checkpoint, config().batchSize(4).build(), data).close());
        assertEquals("batchSize", other.field());
        assertTrue(other.getMessage().contains("is 4 here but 3 in the checkpoint"), other.getMessage());
        InvalidConfigException fewer = assertThrows(InvalidConfigException.class,
                () -> Trainer.resume(model, checkpoint, config().build(), data.head(6)).close());
        assertEquals("examples", fewer.field());

        PtuneException none = assertThrows(PtuneException.class,
                () -> Trainer.resume(model, dir.resolve("nowhere"), config().build(), data));
        assertTrue(none.getMessage().contains("is not a training checkpoint"), none.getMessage());

        Files.delete(checkpoint.resolve(TrainingCheckpoint.OPTIMIZER_FILE));
        CheckpointException damaged = assertThrows(CheckpointException.class,
                () -> Trainer.resume(model, checkpoint, config().build(), data).close());
        assertTrue(damaged.getMessage().contains(checkpoint.resolve(TrainingCheckpoint.OPTIMIZER_FILE)
                + " is missing (listed in"), damaged.getMessage());
        assertFalse(damaged.getMessage().contains("\n"), "one line: " + damaged.getMessage());
    }

    @Test
    void theManifestListsEveryFileWithItsSizeAndSha256() throws Exception {
        Path checkpoints = dir.resolve("manifest");
        try (Trainer trainer = Trainer.create(model, TestMethods.get("p-tuning-mlp"), config().build(), data)) {
            trainer.saveCheckpoints(checkpoints, 6, 1);
            trainer.train();
        }
        Path checkpoint = checkpoints.resolve("checkpoint-6");
        JsonNode manifest = JsonFiles.MAPPER.readTree(checkpoint.resolve(TrainingCheckpoint.MANIFEST_FILE).toFile());
        Map<String, JsonNode> listed = new TreeMap<>();
        manifest.get("files").forEach(entry -> listed.put(entry.get("path").asText(), entry));
        List<String> onDisk;
        try (Stream<Path> files = Files.walk(checkpoint)) {
            onDisk = files.filter(Files::isRegularFile).map(f -> checkpoint.relativize(f).toString())
                    .filter(name -> !name.equals(TrainingCheckpoint.MANIFEST_FILE)).sorted().toList();
        }
        assertEquals(onDisk, List.copyOf(listed.keySet()));
        assertTrue(onDisk.containsAll(List.of("adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                TrainingCheckpoint.OPTIMIZER_FILE, TrainingCheckpoint.STATE_FILE)), onDisk.toString());
        for (String name : onDisk) {
            byte[] bytes = Files.readAllBytes(checkpoint.resolve(name));
            assertEquals(bytes.length, listed.get(name).get("size").asLong(), name);
            assertEquals(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)),
                    listed.get(name).get("sha256").asText(), name);
        }
        try (Stream<Path> entries = Files.list(checkpoints)) {
            assertEquals(List.of("checkpoint-6"), entries.map(p -> p.getFileName().toString()).toList(),
                    "no temporary directory may be left behind");
        }
    }

    @Test
    void damagedCheckpointsAreSkippedByResumeAndNamedByResumeFrom() throws IOException {
        Path checkpoints = dir.resolve("damaged");
        PromptMethodConfig method = TestMethods.get("prompt-tuning");
        List<Double> straightLosses = new ArrayList<>();
        Map<String, float[]> straight;
        try (Trainer trainer = Trainer.create(model, method, config().build(), data)) {
            trainer.saveCheckpoints(checkpoints, 2, 3);
            straight = train(trainer, straightLosses);
        }
        Path cp2 = checkpoints.resolve("checkpoint-2");
        Path cp4 = checkpoints.resolve("checkpoint-4");
        Path cp6 = checkpoints.resolve("checkpoint-6");
        for (Path cp : List.of(cp2, cp4, cp6)) {
            TrainingCheckpoint.verify(cp);
        }

        // checkpoint-6: the optimizer state truncated (a half-written file).
        Path optimizer = cp6.resolve(TrainingCheckpoint.OPTIMIZER_FILE);
        byte[] bytes = Files.readAllBytes(optimizer);
        Files.write(optimizer, Arrays.copyOf(bytes, bytes.length - 7));
        CheckpointException truncated = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(cp6));
        assertTrue(truncated.getMessage().startsWith(optimizer + " has " + (bytes.length - 7) + " bytes but"),
                truncated.getMessage());
        assertTrue(truncated.getMessage().contains("truncated"), truncated.getMessage());
        // --resume-from on exactly that checkpoint fails naming the file; on the folder it falls back.
        CheckpointException exact = assertThrows(CheckpointException.class,
                () -> Trainer.resume(model, cp6, config().build(), data).close());
        assertTrue(exact.getMessage().contains(optimizer.toString()), exact.getMessage());
        assertEquals(cp4, TrainingCheckpoint.resolve(checkpoints));

        // checkpoint-4: one byte of the prompt changed, same size (tampered).
        Path weights = cp4.resolve("adapter/adapter_model.safetensors");
        byte[] w = Files.readAllBytes(weights);
        w[w.length - 1] ^= 0x10;
        Files.write(weights, w);
        CheckpointException tampered = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(cp4));
        assertTrue(tampered.getMessage().startsWith(weights + " does not match its SHA-256"), tampered.getMessage());

        // resumeOrCreate (the CLI's --resume) takes checkpoint-2 and ends where the straight run ends.
        List<Double> resumedLosses = new ArrayList<>();
        try (Trainer resumed = Trainer.resumeOrCreate(model, checkpoints, method, config().build(), data)) {
            assertTrue(resumed.isResumed());
            assertEquals(2, resumed.resumedStep());
            assertSameParameters(straight, train(resumed, resumedLosses));
        }
        assertEquals(straightLosses.subList(2, 6), resumedLosses);

        // An unlisted file, and a missing manifest: nothing valid is left, so a new run starts.
        Files.writeString(cp2.resolve("notes.txt"), "added by hand");
        CheckpointException unlisted = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(cp2));
        assertTrue(unlisted.getMessage().contains("notes.txt is not listed in"), unlisted.getMessage());
        Files.delete(cp2.resolve(TrainingCheckpoint.MANIFEST_FILE));
        CheckpointException noManifest = assertThrows(CheckpointException.class, () -> TrainingCheckpoint.verify(cp2));
        assertTrue(noManifest.getMessage().contains("manifest.json is missing"), noManifest.getMessage());
        assertTrue(TrainingCheckpoint.newestValid(checkpoints).isEmpty());
        try (Trainer fresh = Trainer.resumeOrCreate(model, checkpoints, method, config().build(), data)) {
            assertFalse(fresh.isResumed());
        }
    }

    @Test
    void aResumeThatNamesAnotherPromptFailsNamingTheField() {
        Path checkpoints = dir.resolve("prompt");
        PromptTuningConfig method = PromptTuningConfig.builder().numVirtualTokens(4).initText("Once upon a time")
                .seed(3).build();
        try (Trainer trainer = Trainer.create(model, method, config().build(), data)) {
            trainer.saveCheckpoints(checkpoints, 3, 1);
            trainer.train();
        }
        Map<String, String> recorded = TrainingCheckpoint.readState(checkpoints.resolve("checkpoint-6")).prompt();
        assertEquals(TrainingCheckpoint.promptSettings(method), recorded);
        assertEquals("4", recorded.get("numVirtualTokens"));

        // The same configuration, built again, resumes.
        PromptTuningConfig same = PromptTuningConfig.builder().numVirtualTokens(4).initText("Once upon a time")
                .seed(3).build();
        try (Trainer resumed = Trainer.resume(model, checkpoints, same, config().build(), data)) {
            assertTrue(resumed.isResumed());
        }
        InvalidConfigException longer = assertThrows(InvalidConfigException.class, () -> Trainer.resume(model,
                checkpoints, PromptTuningConfig.builder().numVirtualTokens(5).initText("Once upon a time").seed(3)
                        .build(), config().build(), data).close());
        assertEquals("numVirtualTokens", longer.field());
        assertTrue(longer.getMessage().contains("is 5 here but 4 in the checkpoint"), longer.getMessage());
        InvalidConfigException otherMethod = assertThrows(InvalidConfigException.class, () -> Trainer.resume(model,
                checkpoints, TestMethods.get("prefix-projection"), config().build(), data).close());
        assertEquals("method", otherMethod.field());
        assertTrue(otherMethod.getMessage().contains("is prefix-tuning here but prompt-tuning"),
                otherMethod.getMessage());
    }
}
