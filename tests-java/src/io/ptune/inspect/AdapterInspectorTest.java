package io.ptune.inspect;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.AdapterException;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.inspect.AdapterInspection.Neighbour;
import io.ptune.inspect.AdapterInspection.PrefixLayer;
import io.ptune.inspect.AdapterInspection.VirtualToken;
import io.ptune.model.Model;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptInitializer;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link AdapterInspector} on stories260k and the tiny GQA Llama: nearest tokens against an
 * independent computation (a prompt initialised from vocabulary tokens finds those tokens with
 * cosine 1), the trainable-parameter count against the loaded module's own count for every
 * method, prefix norms from PEFT's layout, and adapters that do not fit.
 */
class AdapterInspectorTest {
    private static Model stories;
    private static Model tiny;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        stories = Model.load(TestPaths.stories260k());
        tiny = Model.load(TestPaths.tinyLlama());
    }

    @AfterAll
    static void close() {
        stories.close();
        tiny.close();
    }

    @Test
    void aVocabularyInitialisedPromptFindsItsTokensWithCosineOne() {
        int n = 8;
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(n)
                .initialization(PromptInitSpec.sampleVocab()).seed(7).build();
        Path adapter = dir.resolve("vocab");
        try (PromptModule prompt = PromptModule.create(stories, config)) {
            PromptAdapter.save(prompt, adapter);
        }
        long[] ids = PromptInitializer.sampleVocabIds(n, stories.architecture().vocabSize(), 7);
        AdapterInspection inspection = AdapterInspector.inspect(adapter, stories, 3);
        assertEquals(n, inspection.virtualTokens().size());
        for (int i = 0; i < n; i++) {
            Neighbour first = inspection.virtualTokens().get(i).nearest().get(0);
            assertEquals(ids[i], first.id(), "virtual token " + i);
            assertEquals(1.0, first.cosine(), 1e-6);
            assertEquals(stories.tokenizer().tokenString(ids[i]).orElseThrow(), first.token());
            assertEquals(3, inspection.virtualTokens().get(i).nearest().size());
        }
    }

    @Test
    void aTextInitialisedPromptFindsTheTextsTokens() {
        int n = 6;
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(n)
                .initialization(PromptInitSpec.text("Max the dog ran")).build();
        Path adapter = dir.resolve("text");
        try (PromptModule prompt = PromptModule.create(stories, config)) {
            PromptAdapter.save(prompt, adapter);
        }
        long[] ids = PromptInitializer.textInitIds(stories.tokenizer().encode("Max the dog ran", true), n);
        List<VirtualToken> tokens = AdapterInspector.inspect(adapter, stories, 1).virtualTokens();
        for (int i = 0; i < n; i++) {
            assertEquals(ids[i], tokens.get(i).nearest().get(0).id(), "virtual token " + i);
        }
    }

    @Test
    void nearestTokensAndNormsMatchABruteForceComputation() {
        int n = 5;
        int k = 4;
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(n).seed(3).build();
        Path adapter = dir.resolve("random");
        float[] prompt;
        try (PromptModule module = PromptModule.create(stories, config)) {
            PromptAdapter.save(module, adapter);
            prompt = module.inputPrompt().values();
        }
        int vocab = stories.architecture().vocabSize();
        int dim = stories.architecture().hiddenSize();
        long[] all = new long[vocab];
        for (int v = 0; v < vocab; v++) {
            all[v] = v;
        }
        float[] table = stories.embed(all);
        double normSum = 0;
        for (int v = 0; v < vocab; v++) {
            normSum += norm(table, v * dim, dim);
        }
        AdapterInspection inspection = AdapterInspector.inspect(adapter, stories, k);
        assertEquals(normSum / vocab, inspection.vocabMeanNorm(), 1e-9);
        for (int i = 0; i < n; i++) {
            int row = i;
            double promptNorm = norm(prompt, i * dim, dim);
            List<double[]> scored = new ArrayList<>();
            for (int v = 0; v < vocab; v++) {
                double dot = 0;
                for (int c = 0; c < dim; c++) {
                    dot += (double) prompt[row * dim + c] * table[v * dim + c];
                }
                scored.add(new double[] {v, dot / (promptNorm * norm(table, v * dim, dim))});
            }
            scored.sort(Comparator.comparingDouble((double[] s) -> -s[1]));
            VirtualToken token = inspection.virtualTokens().get(i);
            assertEquals(promptNorm, token.norm(), 1e-9);
            for (int r = 0; r < k; r++) {
                assertEquals((long) scored.get(r)[0], token.nearest().get(r).id(), "token " + i + " rank " + r);
                assertEquals(scored.get(r)[1], token.nearest().get(r).cosine(), 1e-9);
            }
        }
    }

    @Test
    void everyMethodCountsWhatTrainingTrains() throws IOException {
        List<Path> adapters;
        try (Stream<Path> list = Files.list(TestPaths.peftResources().resolve("ours"))) {
            adapters = list.sorted().toList();
        }
        assertEquals(8, adapters.size(), adapters.toString());
        for (Path adapter : adapters) {
            long expected;
            try (PromptModule module = PromptAdapter.loadForTraining(adapter, tiny)) {
                expected = module.trainableParameterCount();
            }
            AdapterInspection withModel = AdapterInspector.inspect(adapter, tiny, 2);
            AdapterInspection filesOnly = AdapterInspector.inspect(adapter, null, 2);
            assertEquals(expected, withModel.trainableParameters(), adapter.toString());
            assertEquals(expected, filesOnly.trainableParameters(), adapter.toString());
            assertTrue(withModel.toText().contains("trainable parameters"), adapter.toString());
            if (withModel.method().equals("prefix-tuning")) {
                assertEquals(tiny.architecture().numLayers(), withModel.prefixLayers().size());
                assertTrue(withModel.virtualTokens().isEmpty());
            } else {
                assertEquals(withModel.numVirtualTokens(), withModel.virtualTokens().size());
                assertEquals(2, withModel.virtualTokens().get(0).nearest().size());
                for (int i = 0; i < withModel.numVirtualTokens(); i++) {
                    assertEquals(filesOnly.virtualTokens().get(i).norm(), withModel.virtualTokens().get(i).norm(),
                            1e-4 * Math.max(1, filesOnly.virtualTokens().get(i).norm()),
                            adapter + ": the saved encoder output and the one computed through the encoder agree");
                }
            }
        }
        AdapterInspection composite = AdapterInspector.inspect(TestPaths.peftResources().resolve("ours/composite"),
                null, 1);
        assertEquals("composite", composite.method());
        assertTrue(composite.virtualTokens().stream().allMatch(v -> v.block() != null), "tokens carry their block");
    }

    @Test
    void peftsPTuningAdapterHasNoEncoderToCount() {
        AdapterInspection inspection = AdapterInspector.inspect(
                TestPaths.peftResources().resolve("p_tuning_mlp/adapter"), tiny, 3);
        assertEquals("p-tuning", inspection.method());
        assertEquals(-1, inspection.trainableParameters());
        assertTrue(inspection.toJson().get("trainable_parameters").isNull());
        assertTrue(inspection.notes().get(0).contains("encoder"), inspection.notes().toString());
        assertEquals(3, inspection.virtualTokens().size());
    }

    @Test
    void prefixNormsFollowPeftsLayout() {
        int n = 3;
        Path adapter = dir.resolve("prefix");
        float[] values;
        try (PromptModule module = PromptModule.create(stories,
                PrefixTuningConfig.builder().numVirtualTokens(n).seed(5).build())) {
            PromptAdapter.save(module, adapter);
            values = module.peftEmbeddings();
        }
        AdapterInspection inspection = AdapterInspector.inspect(adapter, stories, 5);
        int layers = stories.architecture().numLayers();
        int width = PromptModule.prefixTokenDim(stories.architecture());
        assertEquals(layers, inspection.prefixLayers().size());
        assertNull(inspection.promptSource());
        for (PrefixLayer layer : inspection.prefixLayers()) {
            for (int i = 0; i < n; i++) {
                // (n, L, 2, width): key then value of each layer.
                int key = (i * layers * 2 + layer.layer() * 2) * width;
                assertEquals(norm(values, key, width), layer.keyNorms()[i], 1e-9);
                assertEquals(norm(values, key + width, width), layer.valueNorms()[i], 1e-9);
            }
        }
        assertTrue(inspection.toJson().has("prefix_layers"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AdapterInspector.writeNearestTokensPng(inspection, dir.resolve("x.png")));
        assertTrue(e.getMessage().contains("prefix"), e.getMessage());
    }

    @Test
    void anAdapterOfAnotherWidthOrNoneAtAllIsAnErrorNamingTheFile() {
        Path bloom = TestPaths.root().resolve("tests-java/resources/families/bloom/model");
        Path adapter = TestPaths.peftResources().resolve("ours/prompt_tuning");
        try (Model other = Model.load(bloom)) {
            AdapterException e = assertThrows(AdapterException.class, () -> AdapterInspector.inspect(adapter, other, 5));
            assertTrue(e.getMessage().contains(adapter.resolve("adapter_config.json").toString()), e.getMessage());
            assertTrue(e.getMessage().contains("token_dim"), e.getMessage());
        }
        Path missing = dir.resolve("nothing-here");
        AdapterException e = assertThrows(AdapterException.class, () -> AdapterInspector.inspect(missing, null, 5));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }

    private static double norm(float[] values, int offset, int length) {
        double sum = 0;
        for (int c = 0; c < length; c++) {
            sum += (double) values[offset + c] * values[offset + c];
        }
        return Math.sqrt(sum);
    }
}
