package io.ptune.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.classify.PromptClassifier;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.nativebridge.NativeDecodeSession;
import io.ptune.prompt.PromptModule;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * AdapterRegistry on stories260K: adapters of every method (trained a few steps, saved, loaded by
 * name) share one model; a mixed batch of them (and of the bare model), with prompts of different
 * lengths, gives every row what that row gives alone through {@link Generator} / Model.logits.
 */
class AdapterRegistryTest {
    @TempDir
    static Path dir;

    private static Model model;
    private static Map<String, Path> adapters;
    private static AdapterRegistry registry;

    private static final String[] PROMPTS = {"Once upon a time", "Tom had a blue kite. He flew it", "The cat",
        "Lily and her mom went to the park to play on the swings and", "A dog", "One day, a little bird"};

    @BeforeAll
    static void setUp() {
        model = Model.load(TestPaths.stories260k());
        adapters = ServeFixtures.trainAdapters(model, dir, ServeFixtures.METHODS);
        registry = new AdapterRegistry(model);
        adapters.forEach(registry::load);
    }

    @AfterAll
    static void tearDown() {
        registry.close();
        model.close();
    }

    /** One request per adapter plus one on the bare model, each with its own prompt. */
    private static List<String> rowAdapters() {
        List<String> names = new ArrayList<>(adapters.keySet());
        names.add(2, null);
        return names;
    }

    private static long[] ids(int row) {
        return model.tokenizer().encode(PROMPTS[row % PROMPTS.length], true);
    }

    /** The same request alone: the adapter loaded afresh from its folder, through Generator. */
    private static Generation alone(String adapter, long[] ids, GenerationConfig config) {
        if (adapter == null) {
            return new Generator(model, null, config).generate(List.of(ids)).get(0);
        }
        try (PromptModule prompt = PromptAdapter.load(adapters.get(adapter), model)) {
            return new Generator(model, prompt, config).generate(List.of(ids)).get(0);
        }
    }

    private static float[] nextLogits(String adapter, long[] ids) {
        if (adapter == null) {
            return Tolerances.last(model.logits(null, ids));
        }
        try (PromptModule prompt = PromptAdapter.load(adapters.get(adapter), model)) {
            return Tolerances.last(model.logits(prompt, ids));
        }
    }

    @Test
    void registryListsEveryMethodOnTheSharedModel() {
        List<AdapterInfo> infos = registry.adapters();
        assertEquals(List.copyOf(adapters.keySet()), infos.stream().map(AdapterInfo::name).toList());
        assertEquals(Set.of("prompt-tuning", "p-tuning", "prefix-tuning", "dynamic", "composite"),
                new HashSet<>(infos.stream().map(AdapterInfo::method).toList()));
        for (AdapterInfo info : infos) {
            assertEquals(AdapterInfo.Task.GENERATE, info.task());
            assertTrue(info.virtualTokens() > 0, info.toString());
            try (AdapterRegistry.Lease lease = registry.acquire(info.name())) {
                assertTrue(lease.prompt().model() == model, "every adapter runs on the one loaded model");
            }
        }
    }

    @Test
    void mixedGreedyBatchGivesEveryRowWhatItGivesAlone() {
        List<String> names = rowAdapters();
        List<AdapterRegistry.Lease> leases = new ArrayList<>();
        List<AdapterRegistry.Request> requests = new ArrayList<>();
        List<GenerationConfig> configs = new ArrayList<>();
        try {
            for (int row = 0; row < names.size(); row++) {
                String name = names.get(row);
                AdapterRegistry.Lease lease = name == null ? null : registry.acquire(name);
                leases.add(lease);
                GenerationConfig config = GenerationConfig.builder().maxNewTokens(8 + 3 * row).build();
                configs.add(config);
                requests.add(new AdapterRegistry.Request(lease, ids(row), config));
            }
            List<Generation> mixed = registry.generate(requests);
            Set<List<Long>> distinct = new HashSet<>();
            for (int row = 0; row < names.size(); row++) {
                String name = names.get(row);
                long[] input = ids(row);
                Generation expected = alone(name, input, configs.get(row));
                Generation actual = mixed.get(row);
                assertArrayEquals(input, actual.promptIds());
                Tolerances.assertSameGreedyTokens(expected.generatedIds(), actual.generatedIds(),
                        i -> nextLogits(name, Tolerances.prefixed(input, expected.generatedIds(), i)), "row " + row
                                + " (" + name + ")");
                if (Arrays.equals(expected.generatedIds(), actual.generatedIds())) {
                    assertEquals(expected.text(), actual.text());
                }
                distinct.add(Arrays.stream(actual.generatedIds()).boxed().toList());
            }
            assertTrue(distinct.size() >= names.size() - 1, "the rows' continuations differ: " + distinct.size());
        } finally {
            leases.stream().filter(l -> l != null).forEach(AdapterRegistry.Lease::close);
        }
    }

    @Test
    void decoderRequestsJoiningARunningDecodeGiveWhatTheyGiveAlone() {
        List<String> names = rowAdapters();
        List<AdapterRegistry.Lease> leases = new ArrayList<>();
        try (AdapterRegistry.Decoder decoder = registry.decoder()) {
            Map<Long, Integer> rowOf = new HashMap<>();
            Map<Integer, List<Long>> tokens = new HashMap<>();
            List<AdapterRegistry.Request> requests = new ArrayList<>();
            for (int row = 0; row < names.size(); row++) {
                String name = names.get(row);
                AdapterRegistry.Lease lease = name == null ? null : registry.acquire(name);
                leases.add(lease);
                requests.add(new AdapterRegistry.Request(lease, ids(row),
                        GenerationConfig.builder().maxNewTokens(5 + 2 * row).build()));
            }
            // Row r joins before step 2r: every row but the first joins a batch that is decoding.
            int ended = 0;
            int mostRunning = 0;
            for (int step = 0; ended < requests.size(); step++) {
                assertTrue(step < 200, "the decoder does not end");
                if (step % 2 == 0 && step / 2 < requests.size()) {
                    int row = step / 2;
                    rowOf.put(decoder.add(requests.get(row)), row);
                    tokens.put(row, new ArrayList<>());
                }
                mostRunning = Math.max(mostRunning, decoder.size());
                for (NativeDecodeSession.Token t : decoder.step()) {
                    tokens.get(rowOf.get(t.id())).add(t.token());
                    if (t.done()) {
                        ended++;
                    }
                }
            }
            assertEquals(0, decoder.size());
            assertTrue(mostRunning >= 3, "rows decoded together: " + mostRunning);
            for (int row = 0; row < names.size(); row++) {
                String name = names.get(row);
                long[] input = ids(row);
                Generation aloneGeneration = alone(name, input, requests.get(row).config());
                long[] expected = aloneGeneration.generatedIds();
                long[] actual = tokens.get(row).stream().mapToLong(Long::longValue).toArray();
                Tolerances.assertSameGreedyTokens(expected, actual,
                        i -> nextLogits(name, Tolerances.prefixed(input, expected, i)), "row " + row + " (" + name + ")");
                if (Arrays.equals(expected, actual)) {
                    assertEquals(aloneGeneration.text(), decoder.generation(requests.get(row), actual).text());
                }
            }
            // A cancelled request leaves; an unknown id is refused.
            long id = decoder.add(requests.get(0));
            decoder.step();
            assertTrue(decoder.cancel(id));
            assertFalse(decoder.cancel(id));
            assertEquals(0, decoder.size());
            assertTrue(decoder.step().isEmpty());
        } finally {
            leases.stream().filter(l -> l != null).forEach(AdapterRegistry.Lease::close);
        }
    }

    @Test
    void mixedLogitsOfEveryRowAreWithinRoundingOfTheRowAlone() {
        List<String> names = rowAdapters();
        List<AdapterRegistry.Lease> leases = new ArrayList<>();
        List<AdapterRegistry.Request> requests = new ArrayList<>();
        try {
            for (int row = 0; row < names.size(); row++) {
                AdapterRegistry.Lease lease = names.get(row) == null ? null : registry.acquire(names.get(row));
                leases.add(lease);
                requests.add(new AdapterRegistry.Request(lease, ids(row), GenerationConfig.defaults()));
            }
            float[][][] mixed = registry.promptLogits(requests);
            for (int row = 0; row < names.size(); row++) {
                String name = names.get(row);
                long[] input = ids(row);
                float[][] all;
                if (name == null) {
                    all = model.logits(null, input);
                } else {
                    try (PromptModule prompt = PromptAdapter.load(adapters.get(name), model)) {
                        all = model.logits(prompt, input);
                    }
                }
                float[][] text = Arrays.copyOfRange(all, all.length - input.length, all.length);
                assertEquals(input.length, mixed[row].length);
                double tolerance = Tolerances.fp32(Tolerances.maxAbs(text));
                double diff = Tolerances.maxDiff(text, mixed[row]);
                assertTrue(diff <= tolerance, "row " + row + " (" + name + "): max |mixed - alone| " + diff
                        + " > " + tolerance);
            }
        } finally {
            leases.stream().filter(l -> l != null).forEach(AdapterRegistry.Lease::close);
        }
    }

    @Test
    void sampledRowsDrawWithTheirOwnSeedAsAlone() {
        List<String> names = List.of("prompt-tuning", "prefix", "prompt-tuning", "dynamic");
        List<AdapterRegistry.Lease> leases = new ArrayList<>();
        List<AdapterRegistry.Request> requests = new ArrayList<>();
        List<GenerationConfig> configs = new ArrayList<>();
        try {
            for (int row = 0; row < names.size(); row++) {
                AdapterRegistry.Lease lease = registry.acquire(names.get(row));
                leases.add(lease);
                GenerationConfig config = GenerationConfig.builder().greedy(false).temperature(0.9).topK(50)
                        .topP(0.95).seed(100 + row).maxNewTokens(12).build();
                configs.add(config);
                requests.add(new AdapterRegistry.Request(lease, ids(0), config));
            }
            List<Generation> mixed = registry.generate(requests);
            for (int row = 0; row < names.size(); row++) {
                assertArrayEquals(alone(names.get(row), ids(0), configs.get(row)).generatedIds(),
                        mixed.get(row).generatedIds(), "row " + row);
            }
            assertFalse(Arrays.equals(mixed.get(0).generatedIds(), mixed.get(2).generatedIds()),
                    "one adapter, two seeds: two draws");
        } finally {
            leases.forEach(AdapterRegistry.Lease::close);
        }
    }

    @Test
    void aRemovedAdapterFinishesItsLeasesThenCloses() {
        Path folder = adapters.get("prefix");
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("a", folder);
            GenerationConfig config = GenerationConfig.builder().maxNewTokens(6).build();
            AdapterRegistry.Lease lease = own.acquire("a");
            PromptModule prompt = lease.prompt();
            assertTrue(own.remove("a"));
            assertFalse(own.remove("a"));
            assertThrows(UnknownAdapterException.class, () -> own.acquire("a"));
            assertFalse(own.contains("a"));
            // The lease still runs, and gives what the adapter gives alone.
            Generation g = own.generate(List.of(new AdapterRegistry.Request(lease, ids(0), config))).get(0);
            assertArrayEquals(alone("prefix", ids(0), config).generatedIds(), g.generatedIds());
            lease.close();
            lease.close();  // idempotent
            assertThrows(IllegalStateException.class, prompt::inputVirtualTokens, "closed with its last lease");
            // The name is free again.
            own.load("a", folder);
            assertEquals(List.of("a"), own.adapters().stream().map(AdapterInfo::name).toList());
        }
    }

    @Test
    void hotAddAndRemoveWhileOtherThreadsGenerate() throws Exception {
        GenerationConfig config = GenerationConfig.builder().maxNewTokens(5).build();
        long[] expected = alone("prompt-tuning", ids(1), config).generatedIds();
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("stable", adapters.get("prompt-tuning"));
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                futures.add(pool.submit(() -> {
                    for (int i = 0; i < 15; i++) {
                        String name = i % 2 == 0 ? "stable" : "churn";
                        try (AdapterRegistry.Lease lease = own.acquire(name)) {
                            Generation g = own.generate(List.of(new AdapterRegistry.Request(lease, ids(1), config)))
                                    .get(0);
                            if (name.equals("stable")) {
                                assertArrayEquals(expected, g.generatedIds());
                            }
                        } catch (UnknownAdapterException e) {
                            assertEquals("churn", e.name());  // removed meanwhile: a clean error
                        }
                    }
                    return null;
                }));
            }
            futures.add(pool.submit(() -> {
                for (int i = 0; i < 10; i++) {
                    own.load("churn", adapters.get(i % 2 == 0 ? "prefix" : "dynamic"));
                    own.remove("churn");
                }
                return null;
            }));
            for (Future<?> f : futures) {
                f.get(120, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void twoStageAdaptersRunAloneBesideAMixedBatch() {
        PromptModule twoStage = PromptModule.create(model, io.ptune.TestMethods.get("prompt-tuning"));
        twoStage.unfreezeTopLayers(1, 1e-5);
        String layerWeight = twoStage.layerParameterNames().get(0);
        float[] w = twoStage.read(layerWeight);
        for (int i = 0; i < w.length; i++) {
            w[i] *= 1.5f;  // its own copy of the top layer now differs from the shared model's
        }
        twoStage.write(layerWeight, w);
        GenerationConfig config = GenerationConfig.builder().maxNewTokens(10).build();
        long[] expected = new Generator(model, twoStage, config).generate(List.of(ids(0))).get(0).generatedIds();
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.add("two-stage", twoStage);
            own.load("prefix", adapters.get("prefix"));
            try (AdapterRegistry.Lease a = own.acquire("two-stage"); AdapterRegistry.Lease b = own.acquire("prefix")) {
                List<Generation> out = own.generate(List.of(new AdapterRegistry.Request(a, ids(0), config),
                        new AdapterRegistry.Request(b, ids(1), config), new AdapterRegistry.Request(null, ids(2), config)));
                assertArrayEquals(expected, out.get(0).generatedIds());
                long[] prefixAlone = alone("prefix", ids(1), config).generatedIds();
                Tolerances.assertSameGreedyTokens(prefixAlone, out.get(1).generatedIds(),
                        i -> nextLogits("prefix", Tolerances.prefixed(ids(1), prefixAlone, i)), "prefix row");
                long[] plainAlone = alone(null, ids(2), config).generatedIds();
                Tolerances.assertSameGreedyTokens(plainAlone, out.get(2).generatedIds(),
                        i -> nextLogits(null, Tolerances.prefixed(ids(2), plainAlone, i)), "bare-model row");
                assertThrows(IllegalArgumentException.class, () -> own.promptLogits(
                        List.of(new AdapterRegistry.Request(a, ids(0), config))));
            }
        }
    }

    @Test
    void classifiersServeClassifyAndNotGenerate() {
        Path folder = ServeFixtures.classifier(model, dir.resolve("classifier"));
        try (AdapterRegistry own = new AdapterRegistry(model);
                PromptClassifier direct = PromptClassifier.load(model, folder)) {
            AdapterInfo info = own.load("mood", folder);
            assertEquals(AdapterInfo.Task.CLASSIFY, info.task());
            assertEquals(List.of("happy", "sad"), info.labels());
            PromptClassifier.Prediction p = own.classify("mood", "The girl smiled.", null);
            assertEquals(direct.classify("The girl smiled.").probabilities(), p.probabilities());
            try (AdapterRegistry.Lease lease = own.acquire("mood")) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> own.generate(
                        List.of(new AdapterRegistry.Request(lease, ids(0), GenerationConfig.defaults()))));
                assertTrue(e.getMessage().contains("is a classifier"), e.getMessage());
            }
            own.load("story", adapters.get("prefix"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> own.classify("story", "x", null));
            assertTrue(e.getMessage().contains("is a generation adapter"), e.getMessage());
        }
    }

    @Test
    void badNamesRequestsAndClosedRegistriesFailClearly() {
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            assertThrows(IllegalArgumentException.class, () -> own.load("bad name", adapters.get("prefix")));
            assertThrows(IllegalArgumentException.class, () -> own.load("../x", adapters.get("prefix")));
            own.load("x", adapters.get("prefix"));
            IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
                    () -> own.load("x", adapters.get("dynamic")));
            assertTrue(twice.getMessage().contains("loaded already"));
            UnknownAdapterException unknown = assertThrows(UnknownAdapterException.class, () -> own.acquire("y"));
            assertTrue(unknown.getMessage().contains("(loaded: x)"), unknown.getMessage());
            try (AdapterRegistry.Lease lease = own.acquire("x")) {
                InvalidConfigException tooLong = assertThrows(InvalidConfigException.class, () -> own.generate(List.of(
                        new AdapterRegistry.Request(lease, ids(0), GenerationConfig.builder().maxNewTokens(510).build()))));
                assertEquals("maxNewTokens", tooLong.field());
                InvalidConfigException outside = assertThrows(InvalidConfigException.class, () -> own.generate(List.of(
                        new AdapterRegistry.Request(lease, new long[] {1, 100_000}, GenerationConfig.defaults()))));
                assertEquals("promptIds", outside.field());
            }
        }
        AdapterRegistry closed = new AdapterRegistry(model);
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.acquire("x"));
        assertThrows(IllegalStateException.class, () -> closed.load("x", adapters.get("prefix")));
        assertNotEquals(0, model.architecture().vocabSize(), "the borrowed model stays open");
    }
}
