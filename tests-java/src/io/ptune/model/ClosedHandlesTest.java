package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.classify.ClassLoss;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.ClassificationTrainer;
import io.ptune.classify.PromptClassifier;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.ClassificationDataset;
import io.ptune.data.ClassificationExample;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.nativebridge.NativeModel;
import io.ptune.nativebridge.NativePrompt;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.MetricsWriter;
import io.ptune.train.StepMetrics;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every public AutoCloseable of ptune: closing twice does nothing, and using it afterwards throws
 * an IllegalStateException naming what was closed — never a crash, never a silent fallback (a
 * closed prompt must not turn into "no prompt"). Closing a model before the prompts, classifiers
 * and trainers made from it leaves them valid to close, their parameters readable, and everything
 * that would run the model throws. Closing while other threads compute waits for their calls.
 */
class ClosedHandlesTest {
    private static final long[] IDS = {1, 403, 407, 261, 378};
    private static AlpacaDataset data;
    private static int computeThreads;

    @TempDir
    Path dir;

    @BeforeAll
    static void setUp() {
        computeThreads = ComputeThreads.get();
        ComputeThreads.set(1);  // several calling threads below (see SharedModelThreadsTest)
        data = AlpacaDataset.load(TestPaths.alpacaEn()).head(8);
    }

    @AfterAll
    static void tearDown() {
        ComputeThreads.set(computeThreads);
    }

    private static Model load() {
        return Model.load(TestPaths.stories260k());
    }

    /** Asserts that the call throws IllegalStateException whose message names {@code what} and "closed". */
    private static IllegalStateException assertClosed(String what, Executable call) {
        IllegalStateException e = assertThrows(IllegalStateException.class, call);
        assertTrue(e.getMessage().contains(what) && e.getMessage().contains("closed"), e.getMessage());
        return e;
    }

    private static TrainingConfig training(long steps) {
        return TrainingConfig.builder().maxSteps(steps).batchSize(4).maxLength(48).learningRate(0.03).logEvery(1000)
                .build();
    }

    @Test
    void aClosedModelRefusesEveryUseAndClosesOnce() {
        Model model = load();
        Tokenizer tokenizer = model.tokenizer();
        NativeModel nativeModel = model.nativeModel();
        model.close();
        assertDoesNotThrow(model::close);
        String name = "stories260k";
        assertClosed(name, () -> model.logits(null, IDS));
        assertClosed(name, () -> model.hiddenStates(null, IDS, null));
        assertClosed(name, () -> model.embed(IDS));
        assertClosed(name, model::tokenizer);
        assertClosed(name, model::nativeModel);
        assertClosed(name, () -> PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build()));
        assertClosed(name, () -> new Generator(model, null, GenerationConfig.defaults()).generate(List.of(IDS)));
        assertClosed(name, () -> Trainer.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build(),
                training(1), data));
        // Below the model: the native handle, which would otherwise be a null pointer in C++.
        assertClosed(name, () -> nativeModel.logits(null, IDS, new long[IDS.length], null, 1, IDS.length));
        assertClosed(name, () -> nativeModel.embed(IDS));
        assertTrue(nativeModel.isClosed());
        // The model's tokenizer is closed with it.
        assertClosed("tokenizer", () -> tokenizer.encode("Once", true));
    }

    @Test
    void aClosedTokenizerRefusesEveryUseAndClosesOnce() {
        Tokenizer tokenizer = Tokenizer.load(TestPaths.stories260k());
        long[] ids = tokenizer.encode("Once upon a time", true);
        tokenizer.close();
        assertDoesNotThrow(tokenizer::close);
        assertClosed("tokenizer", () -> tokenizer.encode("Once", false));
        assertClosed("tokenizer", () -> tokenizer.decode(ids, true));
        assertClosed("tokenizer", () -> tokenizer.tokens("Once"));
    }

    @Test
    void aClosedPromptRefusesEveryUseAndIsNeverTakenForNoPrompt() {
        try (Model model = load()) {
            PromptModule prompt = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(3).build());
            NativePrompt nativePrompt = prompt.nativePrompt();
            prompt.close();
            assertDoesNotThrow(prompt::close);
            String name = "prompt (prompt-tuning, 3 virtual tokens)";
            assertClosed(name, () -> prompt.read("embedding"));
            assertClosed(name, () -> prompt.write("embedding", new float[3 * 64]));
            assertClosed(name, prompt::parameterNames);
            assertClosed(name, prompt::peftEmbeddings);
            assertClosed(name, prompt::inputVirtualTokens);
            assertClosed(name, () -> model.logits(prompt, IDS));
            assertClosed(name, () -> new Generator(model, prompt, GenerationConfig.defaults()).generate(List.of(IDS)));
            assertClosed(name, () -> new Trainer(model, prompt, training(1), data));
            // The native handle itself: before, a closed prompt reached C++ as a null pointer, which
            // means "no prompt" there, so the bare model's logits came back.
            assertClosed(name, () -> model.nativeModel().logits(nativePrompt, IDS, new long[] {1, 1, 1, 1, 1}, null, 1,
                    IDS.length));
            assertClosed(name, () -> model.nativeModel().generate(nativePrompt, IDS, new long[] {1, 1, 1, 1, 1}, 1,
                    IDS.length, new long[] {2}, new io.ptune.nativebridge.DecodingOptions(4, true, 1, 0, 1, 0, 0)));
            assertClosed(name, () -> nativePrompt.read("embedding"));
            // The model is unaffected.
            assertEquals(IDS.length, model.logits(null, IDS).length);
        }
    }

    @Test
    void aPromptOutlivesItsModelSafely() {
        Model model = load();
        PromptModule prompt = PromptModule.create(model, PrefixTuningConfig.builder().numVirtualTokens(3)
                .prefixProjection(true).encoderHiddenSize(16).seed(2).build());
        Trainer trainer = new Trainer(model, prompt, training(2), data);
        float[] embedding = prompt.read("embedding");
        float[] peft = prompt.peftEmbeddings();
        model.close();
        // Its own parameters live on (the native prompt keeps the weights it was made for).
        assertArrayEquals(embedding, prompt.read("embedding"));
        assertArrayEquals(peft, prompt.peftEmbeddings());
        prompt.write("embedding", embedding);
        // Whatever runs the model refuses.
        String name = "stories260k";
        assertClosed(name, () -> model.logits(prompt, IDS));
        assertClosed(name, () -> new Generator(model, prompt, GenerationConfig.defaults()).generate(List.of(IDS)));
        assertClosed(name, trainer::train);
        assertClosed(name, () -> prompt.nativePrompt().model().logits(prompt.nativePrompt(), IDS,
                new long[] {1, 1, 1, 1, 1}, null, 1, IDS.length));
        trainer.close();
        assertDoesNotThrow(trainer::close);
        prompt.close();
        assertDoesNotThrow(prompt::close);
    }

    @Test
    void aClosedTrainerRefusesEveryUseAndLeavesABorrowedPromptOpen() {
        try (Model model = load();
                PromptModule prompt = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(3)
                        .build())) {
            Trainer trainer = new Trainer(model, prompt, training(1), data);
            trainer.close();
            assertDoesNotThrow(trainer::close);
            assertClosed("trainer", trainer::train);
            assertClosed("trainer", trainer::prompt);
            assertClosed("trainer", () -> trainer.evaluate(data));
            assertEquals(3, model.logits(prompt, IDS).length - IDS.length, "the borrowed prompt stays open");

            // A trainer that owns its prompt closes it.
            Trainer owning = Trainer.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build(),
                    training(1), data);
            PromptModule owned = owning.prompt();
            owning.close();
            assertClosed("prompt", () -> owned.read("embedding"));

            // A trainer whose borrowed prompt was closed before it trains.
            PromptModule other = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build());
            try (Trainer orphan = new Trainer(model, other, training(1), data)) {
                other.close();
                assertClosed("prompt (prompt-tuning, 2 virtual tokens)", orphan::train);
            }
        }
    }

    @Test
    void closingATrainerWhileItTrainsOnAnotherThreadStopsItCleanly() throws Exception {
        try (Model model = load()) {
            Trainer trainer = Trainer.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build(),
                    training(10_000), data);
            CountDownLatch stepped = new CountDownLatch(3);
            trainer.addListener(m -> stepped.countDown());
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                Future<?> training = pool.submit(trainer::train);
                assertTrue(stepped.await(2, TimeUnit.MINUTES), "training made no steps");
                trainer.close();  // waits for the step in flight
                Exception e = assertThrows(java.util.concurrent.ExecutionException.class,
                        () -> training.get(2, TimeUnit.MINUTES));
                assertTrue(e.getCause() instanceof IllegalStateException, String.valueOf(e.getCause()));
                assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void closingTheModelWhileThreadsGenerateStopsThemCleanly() throws Exception {
        Model model = load();
        PromptModule prompt = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(3)
                .initText("Once upon a time").build());
        GenerationConfig config = GenerationConfig.builder().maxNewTokens(8).greedy(true).build();
        Generation expected = new Generator(model, prompt, config).generate("The dog");
        AtomicInteger rounds = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                PromptModule used = t == 0 ? null : prompt;
                futures.add(pool.submit(() -> {
                    while (true) {
                        Generation g = new Generator(model, used, config).generate("The dog");
                        if (used != null) {
                            assertArrayEquals(expected.generatedIds(), g.generatedIds());
                        }
                        rounds.incrementAndGet();
                    }
                }));
            }
            while (rounds.get() < 20) {
                Thread.sleep(5);
            }
            model.close();  // waits for the calls in flight; the threads' next calls throw
            for (Future<?> future : futures) {
                java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                        () -> future.get(2, TimeUnit.MINUTES));
                assertTrue(e.getCause() instanceof IllegalStateException, String.valueOf(e.getCause()));
                assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
            }
        } finally {
            pool.shutdownNow();
            prompt.close();
        }
    }

    @Test
    void closingAPromptWhileThreadsUseItStopsThemCleanly() throws Exception {
        try (Model model = load()) {
            PromptModule prompt = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(3).build());
            float[][] expected = model.logits(prompt, IDS);
            AtomicInteger rounds = new AtomicInteger();
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                List<Future<?>> futures = new ArrayList<>();
                for (int t = 0; t < 2; t++) {
                    futures.add(pool.submit(() -> {
                        while (true) {
                            assertTrue(Arrays.deepEquals(expected, model.logits(prompt, IDS)));
                            rounds.incrementAndGet();
                        }
                    }));
                }
                while (rounds.get() < 50) {
                    Thread.sleep(2);
                }
                prompt.close();
                for (Future<?> future : futures) {
                    java.util.concurrent.ExecutionException e = assertThrows(
                            java.util.concurrent.ExecutionException.class, () -> future.get(2, TimeUnit.MINUTES));
                    assertTrue(e.getCause() instanceof IllegalStateException, String.valueOf(e.getCause()));
                    assertTrue(e.getCause().getMessage().contains("prompt"), e.getCause().getMessage());
                }
            } finally {
                pool.shutdownNow();
            }
            assertEquals(IDS.length, model.logits(null, IDS).length, "the model works on");
        }
    }

    private static ClassificationDataset tinyData() {
        return new ClassificationDataset(Path.of("inline"), List.of(
                new ClassificationExample("a fun film", null, "pos", 2),
                new ClassificationExample("it is too long and dull", null, "neg", 3),
                new ClassificationExample("great and fun", null, "pos", 4),
                new ClassificationExample("dull and bad", null, "neg", 5)), List.of("neg", "pos"));
    }

    @Test
    void aClosedClassifierAndItsTrainerRefuseEveryUse() {
        ClassificationDataset data = tinyData();
        Model model = load();
        PromptClassifier classifier = PromptClassifier.create(model, PromptTuningConfig.builder().numVirtualTokens(2)
                .build(), ClassificationConfig.builder().build(), data.labels(), 32);
        ClassificationTrainer trainer = new ClassificationTrainer(classifier, training(1), ClassLoss.CROSS_ENTROPY,
                data, null);
        PromptClassifier.Prediction before = classifier.classify("a fun film");
        trainer.close();
        assertDoesNotThrow(trainer::close);
        assertClosed("trainer", trainer::train);
        assertEquals(before, classifier.classify("a fun film"), "the borrowed classifier stays open");

        // Its model closed first: the head's parameters stay readable, classifying refuses.
        String head = classifier.headParameterNames().get(0);
        float[] weights = classifier.readHead(head);
        model.close();
        assertArrayEquals(weights, classifier.readHead(head));
        assertClosed("stories260k", () -> classifier.classify("a fun film"));

        classifier.close();
        assertDoesNotThrow(classifier::close);
        assertClosed("classifier", () -> classifier.classify("a fun film"));
        assertClosed("classifier", () -> classifier.readHead(head));
        assertClosed("classifier", () -> classifier.encode("a fun film", null));
        assertClosed("prompt", () -> classifier.prompt().read("embedding"));
    }

    @Test
    void aClosedMetricsWriterRefusesToWrite() {
        MetricsWriter writer = new MetricsWriter(dir.resolve("metrics.jsonl"));
        StepMetrics metrics = new StepMetrics(1, 1, 1.0, 0.1, 10.0, 0.5, 4);
        writer.onStep(metrics);
        writer.close();
        assertDoesNotThrow(writer::close);
        assertClosed("metrics", () -> writer.onStep(metrics));
    }
}
