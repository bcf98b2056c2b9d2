package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
        PtuneException damaged = assertThrows(PtuneException.class,
                () -> Trainer.resume(model, checkpoint, config().build(), data).close());
        assertTrue(damaged.getMessage().contains("has no optimizer.safetensors"), damaged.getMessage());
        assertFalse(damaged.getMessage().contains("\n"), "one line: " + damaged.getMessage());
    }
}
