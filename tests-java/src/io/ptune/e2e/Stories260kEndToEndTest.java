package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.Stories260kTest;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptInitializer;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import io.ptune.train.MetricsWriter;
import io.ptune.train.StepMetrics;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSummary;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The whole stack on the real stories260K model: tokenizer, native core, training, adapters. */
class Stories260kEndToEndTest extends Stories260kTest {
    /** What stories260K writes greedily from BOS (shared/models/README.md, checked by two independent forwards). */
    private static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play"
            + " outside in the park.";


    @TempDir
    Path dir;



    /** A frozen prompt of small N(0, 0.01) values; the caller closes it. */
    private static PromptModule smallRandomPrompt(int n, long seed) {
        float[] values = PromptInitializer.randomNormal(n, 64, seed);
        for (int i = 0; i < values.length; i++) {
            values[i] *= 0.1f;
        }
        return PromptModule.fixed(model, new SoftPrompt(n, 64, values));
    }

    @Test
    void loadsTheModelWithItsGenerationSettings() {
        assertEquals(List.of(2L), model.eosTokenIds());
        assertEquals(2, model.padTokenId(), "no pad token: EOS pads");
        assertEquals(64, model.architecture().hiddenSize());
    }

    @Test
    void greedyGenerationContinuesTheReferenceStory() {
        Generator generator = new Generator(model, null, GenerationConfig.builder().maxNewTokens(32).build());
        Generation generation = generator.generate("Once upon a time");
        assertArrayEquals(new long[] {1, 403, 407, 261, 378}, generation.promptIds());
        assertTrue(generation.text().startsWith(", there was a little girl named Lily. She loved to play outside"
                + " in the park."), generation.text());
        long[] all = new long[generation.promptIds().length + generation.generatedIds().length];
        System.arraycopy(generation.promptIds(), 0, all, 0, generation.promptIds().length);
        System.arraycopy(generation.generatedIds(), 0, all, generation.promptIds().length,
                generation.generatedIds().length);
        assertTrue(model.tokenizer().decode(all, true).startsWith(STORY));
    }

    @Test
    void logitsAgreeWithGreedyGeneration() {
        long[] ids = model.tokenizer().encode("Once upon a time", true);
        float[][] logits = model.logits(null, ids);
        assertEquals(ids.length, logits.length);
        assertEquals(512, logits[0].length);
        long first = new Generator(model, null, GenerationConfig.builder().maxNewTokens(1).build())
                .generate(List.of(ids)).get(0).generatedIds()[0];
        assertEquals(first, argmax(logits[logits.length - 1]));

        float[][] withPrompt;
        try (PromptModule prompt = smallRandomPrompt(3, 5)) {
            withPrompt = model.logits(prompt, ids);
        }
        assertEquals(3 + ids.length, withPrompt.length, "virtual-token positions come first");
        assertNotEquals(Arrays.toString(logits[ids.length - 1]), Arrays.toString(withPrompt[withPrompt.length - 1]),
                "the prompt changes the prediction");
    }

    @Test
    void batchedLeftPaddedRowsEqualEachRowAlone() {
        List<long[]> prompts = List.of(
                model.tokenizer().encode("Once upon a time", true),
                model.tokenizer().encode("Zoo", true),
                model.tokenizer().encode("The dog saw a big red ball and it was very happy. Then", true));
        try (PromptModule softPrompt = smallRandomPrompt(4, 9)) {
            for (PromptModule prompt : Arrays.asList(null, softPrompt)) {
                Generator generator = new Generator(model, prompt, GenerationConfig.builder().maxNewTokens(24).build());
                List<Generation> batched = generator.generate(prompts);
                for (int row = 0; row < prompts.size(); row++) {
                    long[] input = prompts.get(row);
                    Generation alone = generator.generate(List.of(input)).get(0);
                    // Another batch shape rounds differently: identical unless a near-tie (Tolerances).
                    Tolerances.assertSameGreedyTokens(alone.generatedIds(), batched.get(row).generatedIds(),
                            i -> Tolerances.last(model.logits(prompt, Tolerances.prefixed(input, alone.generatedIds(), i))),
                            "row " + row + (prompt == null ? "" : " behind a soft prompt"));
                    if (Arrays.equals(alone.generatedIds(), batched.get(row).generatedIds())) {
                        assertEquals(alone.text(), batched.get(row).text());
                    }
                }
            }
        }
    }

    @Test
    void samplingIsSeededAndStopsAtEos() {
        GenerationConfig sampled = GenerationConfig.builder().greedy(false).temperature(1.0).topK(40).topP(0.95)
                .seed(11).maxNewTokens(200).build();
        Generator generator = new Generator(model, null, sampled);
        List<long[]> bos = List.<long[]>of(new long[] {1});
        Generation first = generator.generate(bos).get(0);
        // Same seed, shapes and machine: the same draws.
        assertArrayEquals(first.generatedIds(), generator.generate(bos).get(0).generatedIds(), "same seed, same text");
        long[] ids = first.generatedIds();
        for (int i = 0; i < ids.length - 1; i++) {
            assertNotEquals(2L, ids[i], "nothing is generated after EOS");
        }
    }

    @Test
    void trainingLowersTheLossAndTheAdapterRoundTrips() throws Exception {
        AlpacaDataset data = AlpacaDataset.load(TestPaths.alpacaEn()).head(16);
        PromptTuningConfig promptConfig = PromptTuningConfig.builder().numVirtualTokens(8).build();
        TrainingConfig config = TrainingConfig.builder().maxSteps(20).batchSize(8).maxLength(96)
                .learningRate(0.03).build();
        List<StepMetrics> steps = new ArrayList<>();
        Path metricsFile = dir.resolve("metrics.jsonl");
        Path adapterDir = dir.resolve("adapter");
        long[] ids = model.tokenizer().encode("Human: Give three tips for staying healthy.\n\nAssistant: ", true);
        SoftPrompt trained;
        float[][] original;
        try (Trainer trainer = Trainer.create(model, promptConfig, config, data);
                MetricsWriter metrics = new MetricsWriter(metricsFile)) {
            trainer.addListener(steps::add);
            trainer.addListener(metrics);
            double before = trainer.evaluate(data);
            TrainingSummary summary = trainer.train();
            double after = trainer.evaluate(data);
            assertTrue(before > 3 && before < 8, "plausible starting loss " + before);
            assertTrue(after < before - 0.2, "loss " + before + " -> " + after);
            assertEquals(20, summary.steps());
            trained = trainer.prompt().inputPrompt();
            original = model.logits(trainer.prompt(), ids);
            PromptAdapter.save(trainer.prompt(), adapterDir);
        }
        assertEquals(20, steps.size());
        for (int i = 0; i < steps.size(); i++) {
            StepMetrics step = steps.get(i);
            assertEquals(i + 1, step.step());
            assertTrue(Double.isFinite(step.loss()) && step.tokensPerSecond() > 0 && step.labelTokens() > 0);
            if (i > 0) {
                assertTrue(step.learningRate() < steps.get(i - 1).learningRate(), "linear decay");
            }
        }
        assertTrue(steps.get(0).learningRate() <= 0.03 + 1e-12);  // a double formula: a few ulps of 0.03
        assertEquals(20, Files.readAllLines(metricsFile).size());

        // The saved adapter loads back to the same prompt and bit-identical logits.
        float[][] reloaded;
        try (PromptModule loaded = PromptAdapter.load(adapterDir, model)) {
            assertEquals(trained, loaded.inputPrompt());
            reloaded = model.logits(loaded, ids);
        }
        for (int row = 0; row < original.length; row++) {
            assertArrayEquals(original[row], reloaded[row], "row " + row);
        }
    }

    @Test
    void gradientAccumulationStepsEveryFewMicroBatches() {
        AlpacaDataset data = AlpacaDataset.load(TestPaths.alpacaEn()).head(12);
        TrainingConfig config = TrainingConfig.builder().epochs(2).batchSize(2).gradAccum(3).maxLength(256)
                .schedule(io.ptune.train.LrSchedule.CONSTANT).learningRate(0.01).build();
        List<StepMetrics> steps = new ArrayList<>();
        try (Trainer trainer = Trainer.create(model, PromptTuningConfig.builder().numVirtualTokens(2).seed(1).build(),
                config, data)) {
            // 12 examples / batch 2 = 6 micro-batches per epoch, x 2 epochs = 12, / 3 = 4 steps.
            assertEquals(12, trainer.numExamples());
            assertEquals(4, trainer.totalSteps());
            SoftPrompt start = trainer.prompt().inputPrompt();
            trainer.addListener(steps::add);
            assertEquals(4, trainer.train().steps());
            assertNotEquals(start, trainer.prompt().inputPrompt(), "the prompt moved");
        }
        assertEquals(List.of(1L, 2L, 3L, 4L), steps.stream().map(StepMetrics::step).toList());
        for (StepMetrics step : steps) {
            assertEquals(0.01, step.learningRate(), 1e-12, "constant schedule");  // lr x 1.0 in double
        }
    }

    @Test
    void initialisersUseTheModelsEmbeddings() {
        PromptTuningConfig text = PromptTuningConfig.builder().numVirtualTokens(7).initText("Once upon a time").build();
        SoftPrompt fromText = PromptInitializer.initialize(text, model);
        long[] ids = PromptInitializer.textInitIds(model.tokenizer().encode("Once upon a time", true), 7);
        float[] embedded = model.embed(ids);
        assertArrayEquals(embedded, fromText.values());
        assertArrayEquals(fromText.row(0), fromText.row(5), "BOS repeats at position 5");

        PromptTuningConfig labels = PromptTuningConfig.builder().numVirtualTokens(3)
                .labelWords(List.of("happy", "sad")).build();
        SoftPrompt fromLabels = PromptInitializer.initialize(labels, model);
        long[] happy = model.tokenizer().encode("happy", false);
        float[] happyEmbeddings = model.embed(happy);
        float[] mean = new float[64];
        for (int j = 0; j < 64; j++) {
            double sum = 0;
            for (int r = 0; r < happy.length; r++) {
                sum += happyEmbeddings[r * 64 + j];
            }
            mean[j] = (float) (sum / happy.length);
        }
        assertArrayEquals(mean, fromLabels.row(0), 1e-6f);  // a mean of a few fp32 values ~0.1-1: a few ulps
        assertArrayEquals(fromLabels.row(0), fromLabels.row(2), "class i % k");

        SoftPrompt vocab = PromptInitializer.initialize(PromptTuningConfig.builder().numVirtualTokens(4)
                .init(PromptInit.SAMPLE_VOCAB).seed(3).build(), model);
        assertArrayEquals(model.embed(PromptInitializer.sampleVocabIds(4, 512, 3)), vocab.values());
    }

    private static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) {
            if (row[i] > row[best]) {
                best = i;
            }
        }
        return best;
    }
}
