package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.Stories260kTest;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.train.LrSchedule;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Composite prompts: blocks in order, frozen blocks stay put, per-block rates, reuse across tasks. */
class CompositePromptTest extends Stories260kTest {
    private static AlpacaDataset data;

    @TempDir
    Path dir;

    @BeforeAll
    static void loadData() {
        data = AlpacaDataset.load(TestPaths.alpacaEn()).head(16);
    }


    private static TrainingConfig config(long steps) {
        return TrainingConfig.builder().maxSteps(steps).batchSize(8).maxLength(64).learningRate(0.05)
                .schedule(LrSchedule.CONSTANT).build();
    }

    @Test
    void blocksStackInOrderAndAFrozenBlockNeverMoves() {
        CompositePromptConfig config = CompositePromptConfig.builder()
                .addBlock(PromptBlock.of("base", 3, PromptInitSpec.text("Once upon a time")).withFrozen(true))
                .addBlock("domain", 2, PromptInitSpec.random())
                .addBlock(PromptBlock.of("instance", 2, PromptInitSpec.sampleVocab()).withLearningRate(1e-12))
                .build();
        try (Trainer trainer = Trainer.create(model, config, config(6), data)) {
            PromptModule prompt = trainer.prompt();
            assertEquals(java.util.List.of("block.0", "block.1", "block.2"), prompt.parameterNames());
            assertEquals(2 * 64 + 2 * 64, prompt.trainableParameterCount(), "the frozen block is not counted");
            float[] base = prompt.read("block.0");
            float[] domain = prompt.read("block.1");
            float[] instance = prompt.read("block.2");
            float[] before = prompt.peftEmbeddings();
            assertArrayEquals(base, Arrays.copyOfRange(before, 0, 3 * 64), "blocks are stacked in order");
            assertArrayEquals(instance, Arrays.copyOfRange(before, 5 * 64, 7 * 64));
            assertArrayEquals(model.embed(PromptInitializer.textInitIds(
                    model.tokenizer().encode("Once upon a time", true), 3)), base);

            trainer.train();
            assertArrayEquals(base, prompt.read("block.0"), "frozen block unchanged after training");
            assertFalse(Arrays.equals(domain, prompt.read("block.1")), "trainable block moved");
            // AdamW moves an entry by at most lr = 1e-12 a step: far below the 1e-6 bound, far above zero
            // in exact arithmetic, so the block may also stay bit-identical after fp32 rounding.
            assertArrayEquals(instance, prompt.read("block.2"), 1e-6f, "a block at lr 1e-12 barely moves");
            assertFalse(prompt.isTrainable("block.0"));
        }
    }

    @Test
    void aSavedBlockIsReusedByNameInAnotherTask() throws Exception {
        CompositePromptConfig first = CompositePromptConfig.builder()
                .addBlock("base", 3, PromptInitSpec.random())
                .addBlock("task", 2, PromptInitSpec.random()).seed(11).build();
        Path saved = dir.resolve("task-a");
        float[] trainedBase;
        try (Trainer trainer = Trainer.create(model, first, config(3), data)) {
            trainer.train();
            trainedBase = trainer.prompt().read("block.0");
            PromptAdapter.save(trainer.prompt(), saved);
        }
        // The saved blocks come back with their names, sizes and flags.
        try (PromptModule loaded = PromptAdapter.loadForTraining(saved, model)) {
            CompositePromptConfig config = (CompositePromptConfig) loaded.config();
            assertEquals("base", config.blocks().get(0).name());
            assertEquals(2, config.blocks().get(1).numVirtualTokens());
            assertArrayEquals(trainedBase, loaded.read("block.0"));
        }
        // Task B: reuse "base" frozen from task A, train a new task block.
        CompositePromptConfig second = CompositePromptConfig.builder()
                .addBlock(PromptBlock.of("base", 3, PromptInitSpec.fromAdapter(saved)).withFrozen(true))
                .addBlock("task", 4, PromptInitSpec.random()).build();
        try (Trainer trainer = Trainer.create(model, second, config(3), data)) {
            assertArrayEquals(trainedBase, trainer.prompt().read("block.0"), "block 'base' taken by name");
            trainer.train();
            assertArrayEquals(trainedBase, trainer.prompt().read("block.0"));
            Path out = dir.resolve("task-b");
            PromptAdapter.save(trainer.prompt(), out);
            try (PromptModule resumed = PromptAdapter.loadForTraining(out, model)) {
                assertFalse(resumed.isTrainable("block.0"), "the frozen flag is saved");
                assertTrue(resumed.isTrainable("block.1"));
                PromptBlock base = ((CompositePromptConfig) resumed.config()).blocks().get(0);
                assertTrue(base.frozen());
                assertEquals(PromptInit.FROM_ADAPTER, base.initialization().init());
            }
        }
    }
}
