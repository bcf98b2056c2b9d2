package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.AlpacaExample;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TwoStageConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * One loaded model used by several threads at once, each with its own prompt (prompt tuning,
 * P-tuning, prefix tuning, dynamic) or none: every logits / greedy / seeded-sampling result, and
 * the text of each, equals the same call made alone on the test's thread, bit for bit (the same
 * shapes on the same machine). A prompt trained meanwhile (two stages: the top layers too) ends
 * exactly where it ends when trained alone, and changes nothing the other threads see.
 */
class SharedModelThreadsTest {
    private static final String[] TEXTS = {"Once upon a time", "The little dog", "Lily and Tom went to", "One day"};
    private static final long[] SEEDS = {7, 11, 13};
    private static final int NEW_TOKENS = 12;
    private static final int ITERATIONS = 16;

    private static Model model;
    private static int computeThreads;
    /** Method name -> prompt; the key "none" is the bare model (a null prompt). */
    private static final Map<String, PromptModule> PROMPTS = new LinkedHashMap<>();
    /** Method name -> what each call gives alone. */
    private static final Map<String, Expected> EXPECTED = new LinkedHashMap<>();

    /** What one prompt gives for each text: logits, the greedy continuation, one sample per seed. */
    private record Expected(float[][][] logits, Generation[] greedy, Generation[][] sampled) {}

    @BeforeAll
    static void setUp() {
        // One intra-op thread per calling thread: five threads of two OpenMP workers each on a small
        // (and shared) CI machine spend their time in OpenMP barriers. Every call, alone or not,
        // runs with this count, so the comparisons hold for any count.
        computeThreads = ComputeThreads.get();
        ComputeThreads.set(1);
        model = Model.load(TestPaths.stories260k());
        Map<String, PromptMethodConfig> configs = new LinkedHashMap<>();
        configs.put("prompt-tuning", PromptTuningConfig.builder().numVirtualTokens(6).initText("Once upon a time")
                .seed(21).build());
        configs.put("p-tuning-lstm", PTuningConfig.builder().numVirtualTokens(5).encoderType(PromptEncoderType.LSTM)
                .encoderHiddenSize(16).seed(22).build());
        configs.put("prefix-projection", PrefixTuningConfig.builder().numVirtualTokens(4).prefixProjection(true)
                .encoderHiddenSize(24).seed(23).build());
        configs.put("dynamic", DynamicPromptConfig.builder().numVirtualTokens(4).generatorHiddenSize(16)
                .initText("The dog").seed(24).build());
        PROMPTS.put("none", null);
        for (Map.Entry<String, PromptMethodConfig> e : configs.entrySet()) {
            PromptModule prompt = PromptModule.create(model, e.getValue());
            perturb(prompt, e.getKey().hashCode());
            PROMPTS.put(e.getKey(), prompt);
        }
        for (Map.Entry<String, PromptModule> e : PROMPTS.entrySet()) {
            EXPECTED.put(e.getKey(), alone(e.getValue()));
        }
    }

    @AfterAll
    static void tearDown() {
        for (PromptModule prompt : PROMPTS.values()) {
            if (prompt != null) {
                prompt.close();
            }
        }
        model.close();
        ComputeThreads.set(computeThreads);
    }

    /**
     * Moves every parameter off its initial value (the dynamic generator's last layer starts at
     * zero, which would make the prompt independent of the input).
     */
    private static void perturb(PromptModule prompt, long seed) {
        Random random = new Random(seed);
        for (String name : prompt.parameterNames()) {
            float[] values = prompt.read(name);
            for (int i = 0; i < values.length; i++) {
                values[i] += (float) (0.05 * random.nextGaussian());
            }
            prompt.write(name, values);
        }
    }

    private static GenerationConfig greedy() {
        return GenerationConfig.builder().maxNewTokens(NEW_TOKENS).greedy(true).build();
    }

    private static GenerationConfig sampling(long seed) {
        return GenerationConfig.builder().maxNewTokens(NEW_TOKENS).greedy(false).temperature(0.9).topK(40).topP(0.95)
                .seed(seed).build();
    }

    private static Expected alone(PromptModule prompt) {
        float[][][] logits = new float[TEXTS.length][][];
        Generation[] greedy = new Generation[TEXTS.length];
        Generation[][] sampled = new Generation[TEXTS.length][SEEDS.length];
        for (int t = 0; t < TEXTS.length; t++) {
            long[] ids = model.tokenizer().encode(TEXTS[t], true);
            logits[t] = model.logits(prompt, ids);
            greedy[t] = new Generator(model, prompt, greedy()).generate(TEXTS[t]);
            for (int s = 0; s < SEEDS.length; s++) {
                sampled[t][s] = new Generator(model, prompt, sampling(SEEDS[s])).generate(TEXTS[t]);
            }
        }
        return new Expected(logits, greedy, sampled);
    }

    /** One round of calls with {@code prompt}, each checked against what it gives alone. */
    private static void checkRound(String name, int iteration) {
        PromptModule prompt = PROMPTS.get(name);
        Expected expected = EXPECTED.get(name);
        int t = iteration % TEXTS.length;
        int s = iteration % SEEDS.length;
        String where = name + ", iteration " + iteration + ", text '" + TEXTS[t] + "'";
        long[] ids = model.tokenizer().encode(TEXTS[t], true);
        assertArrayEquals(expected.greedy()[t].promptIds(), ids, where + ": token ids");
        float[][] logits = model.logits(prompt, ids);
        assertTrue(Arrays.deepEquals(expected.logits()[t], logits), where + ": logits differ from the call made alone");
        assertSame(expected.greedy()[t], new Generator(model, prompt, greedy()).generate(TEXTS[t]), where + ", greedy");
        assertSame(expected.sampled()[t][s], new Generator(model, prompt, sampling(SEEDS[s])).generate(TEXTS[t]),
                where + ", sampling with seed " + SEEDS[s]);
    }

    private static void assertSame(Generation expected, Generation actual, String where) {
        assertArrayEquals(expected.generatedIds(), actual.generatedIds(), where + ": generated ids");
        assertEquals(expected.text(), actual.text(), where + ": text");
    }

    /** Runs the tasks at once (released together) and rethrows the first failure. */
    private static void runTogether(List<Callable<Void>> tasks) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
        CountDownLatch start = new CountDownLatch(1);
        try {
            List<Future<Void>> futures = new ArrayList<>();
            for (Callable<Void> task : tasks) {
                futures.add(pool.submit(() -> {
                    start.await();
                    return task.call();
                }));
            }
            start.countDown();
            for (Future<Void> future : futures) {
                try {
                    future.get(5, TimeUnit.MINUTES);
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof Exception cause) {
                        throw cause;
                    }
                    throw (Error) e.getCause();
                }
            }
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(1, TimeUnit.MINUTES), "worker threads did not stop");
        }
    }

    @Test
    void fourPromptsAndTheBareModelOnFiveThreadsGiveWhatEachGivesAlone() throws Exception {
        List<Callable<Void>> tasks = new ArrayList<>();
        for (String name : PROMPTS.keySet()) {
            tasks.add(() -> {
                for (int i = 0; i < ITERATIONS; i++) {
                    checkRound(name, i);
                }
                return null;
            });
        }
        runTogether(tasks);
    }

    @Test
    void onePromptSharedByThreeThreadsGivesWhatItGivesAlone() throws Exception {
        List<Callable<Void>> tasks = new ArrayList<>();
        for (int thread = 0; thread < 3; thread++) {
            int offset = thread;
            tasks.add(() -> {
                for (int i = 0; i < ITERATIONS / 2; i++) {
                    checkRound("prefix-projection", i + offset);
                }
                return null;
            });
        }
        runTogether(tasks);
    }

    /** Trains a prompt in two stages (the second unfreezes the top two layers); returns its parameters. */
    private static Map<String, float[]> train(AlpacaDataset data) {
        TrainingConfig config = TrainingConfig.builder().maxSteps(3).batchSize(4).maxLength(48).learningRate(0.03)
                .seed(5).twoStage(TwoStageConfig.builder().layers(2).learningRate(1e-3).steps(2).build()).build();
        PromptMethodConfig prompt = PromptTuningConfig.builder().numVirtualTokens(4).initText("Once upon").seed(31)
                .build();
        try (Trainer trainer = Trainer.create(model, prompt, config, data)) {
            trainer.train();
            PromptModule trained = trainer.prompt();
            assertEquals(2, trained.unfrozenLayers());
            return trained.readAll(trained.parameterNames());
        }
    }

    @Test
    void trainingOnePromptWhileOthersGenerateChangesNothingTheyComputeAndTrainsAsAlone() throws Exception {
        AlpacaDataset data = new AlpacaDataset(Path.of("inline"), List.of(
                new AlpacaExample("Tell a story.", "", "Once upon a time, a little dog ran home."),
                new AlpacaExample("Name a pet.", "", "A cat."),
                new AlpacaExample("Who went to the park?", "", "Lily and Tom went to the park."),
                new AlpacaExample("What did the bird do?", "", "The bird sang a happy song.")));
        // Alone, on a thread of its own as below.
        ExecutorService single = Executors.newSingleThreadExecutor();
        Map<String, float[]> alone;
        try {
            alone = single.submit(() -> train(data)).get(5, TimeUnit.MINUTES);
        } finally {
            single.shutdownNow();
        }

        AtomicBoolean trained = new AtomicBoolean();
        List<Map<String, float[]>> together = new ArrayList<>();
        List<Callable<Void>> tasks = new ArrayList<>();
        tasks.add(() -> {
            try {
                together.add(train(data));
            } finally {
                trained.set(true);
            }
            return null;
        });
        for (String name : List.of("none", "prompt-tuning", "prefix-projection", "dynamic")) {
            tasks.add(() -> {
                // At least a few rounds, and on until the training has ended.
                for (int i = 0; i < 4 || !trained.get(); i++) {
                    checkRound(name, i);
                }
                return null;
            });
        }
        runTogether(tasks);

        Map<String, float[]> concurrent = together.get(0);
        assertEquals(alone.keySet(), concurrent.keySet());
        assertTrue(alone.keySet().stream().anyMatch(n -> n.startsWith("model.layers.4.")), "stage 2 ran");
        for (String name : alone.keySet()) {
            assertArrayEquals(alone.get(name), concurrent.get(name), name + ": trained as when training alone");
        }
        // And afterwards, too: the model's own weights were not touched by either run.
        for (String name : PROMPTS.keySet()) {
            checkRound(name, 0);
        }
        assertFalse(PROMPTS.get("prompt-tuning").parameterNames().stream().anyMatch(n -> n.startsWith("model.")),
                "other prompts have no unfrozen layers");
    }
}
