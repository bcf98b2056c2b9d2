package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.PtuneException;
import io.ptune.TestMethods;
import io.ptune.Stories260kTest;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.nativebridge.NativePrompt;
import io.ptune.nativebridge.PromptSpecOptions;
import io.ptune.train.LrSchedule;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every prompt method on the real stories260K model and a slice of alpaca_en: training lowers the
 * held-out loss, adapters round-trip to identical logits, the adapter's files are the full
 * training state, and KV-cache generation equals recomputing the sequence.
 */
class PromptMethodsTest extends Stories260kTest {
    private static AlpacaDataset train;
    private static AlpacaDataset heldOut;

    @TempDir
    Path dir;

    @BeforeAll
    static void loadData() {
        AlpacaDataset all = AlpacaDataset.load(TestPaths.alpacaEn());
        train = all.slice(0, 64);
        heldOut = all.slice(1000, 1032);
    }


    static Stream<String> methods() {
        return TestMethods.all().keySet().stream();
    }

    private static final long[] STORY = {1, 403, 407, 261, 378};
    private static final long[] OTHER = {1, 64, 300, 301, 12, 80, 7};

    /** Moves a dynamic prompt's generator off its zero start, so the prompt depends on the input. */
    static void perturbGenerator(PromptModule module, long seed) {
        if (module.config() instanceof DynamicPromptConfig) {
            Random random = new Random(seed);
            for (String name : List.of("generator.2.weight", "generator.2.bias")) {
                float[] values = module.read(name);
                for (int i = 0; i < values.length; i++) {
                    values[i] = 0.2f * (float) random.nextGaussian();
                }
                module.write(name, values);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("methods")
    void trainingLowersTheHeldOutLoss(String method) {
        TrainingConfig config = TrainingConfig.builder().maxSteps(16).batchSize(8).maxLength(64).learningRate(0.03)
                .schedule(LrSchedule.CONSTANT).build();
        try (Trainer trainer = Trainer.create(model, TestMethods.get(method), config, train)) {
            double before = trainer.evaluate(heldOut);
            trainer.train();
            double after = trainer.evaluate(heldOut);
            assertTrue(Double.isFinite(before) && Double.isFinite(after));
            assertTrue(after < before - 0.05, method + ": held-out loss " + before + " -> " + after);
        }
    }

    @ParameterizedTest
    @MethodSource("methods")
    void adapterReloadsToIdenticalLogitsAndFullState(String method) throws Exception {
        Path out = dir.resolve(method);
        Map<String, float[]> saved;
        float[][] story;
        float[][] other;
        TrainingConfig config = TrainingConfig.builder().maxSteps(2).batchSize(8).maxLength(64).learningRate(0.05).build();
        try (Trainer trainer = Trainer.create(model, TestMethods.get(method), config, train)) {
            trainer.train();
            PromptModule trained = trainer.prompt();
            perturbGenerator(trained, 1);
            PromptAdapter.save(trained, out);
            saved = trained.readAll(trained.parameterNames());
            story = model.logits(trained, STORY);
            other = model.logits(trained, OTHER);
            int expectedRows = trained.method() == PromptMethod.PREFIX_TUNING ? STORY.length
                    : trained.numVirtualTokens() + STORY.length;
            assertEquals(expectedRows, story.length, "virtual positions first, none for a prefix");
        }
        try (PromptModule loaded = PromptAdapter.load(out, model)) {
            assertEquals(0, loaded.trainableParameterCount(), "loaded for inference: frozen");
            // The same values, shapes and machine: bit-identical.
            assertTrue(Arrays.deepEquals(story, model.logits(loaded, STORY)), method + ": identical logits");
            assertTrue(Arrays.deepEquals(other, model.logits(loaded, OTHER)), method + ": identical logits");
        }
        try (PromptModule resumed = PromptAdapter.loadForTraining(out, model)) {
            assertEquals(saved.keySet(), Set.copyOf(resumed.parameterNames()));
            for (Map.Entry<String, float[]> p : saved.entrySet()) {
                assertArrayEquals(p.getValue(), resumed.read(p.getKey()), method + ": " + p.getKey() + " bit-identical");
            }
            assertTrue(resumed.trainableParameterCount() > 0);
        }
        assertAdapterFiles(method, out);
    }

    /** Exactly the files and adapter_config.json keys PEFT (before 0.14) accepts, plus our extras. */
    private static void assertAdapterFiles(String method, Path out) throws Exception {
        Set<String> common = Set.of("base_model_name_or_path", "inference_mode", "num_attention_heads", "num_layers",
                "num_transformer_submodules", "num_virtual_tokens", "peft_type", "task_type", "token_dim");
        Set<String> promptTuning = union(common, "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path");
        record Expect(String peftType, Set<String> keys, Set<String> files) {}
        Expect expect = switch (method) {
            case "prompt-tuning" -> new Expect("PROMPT_TUNING", promptTuning, Set.of("adapter_model.safetensors"));
            case "p-tuning-mlp", "p-tuning-lstm" -> new Expect("P_TUNING", union(common, "encoder_reparameterization_type",
                    "encoder_hidden_size", "encoder_num_layers", "encoder_dropout"),
                    Set.of("adapter_model.safetensors", "ptune_prompt_encoder.safetensors"));
            case "prefix" -> new Expect("PREFIX_TUNING", union(common, "encoder_hidden_size", "prefix_projection"),
                    Set.of("adapter_model.safetensors"));
            case "prefix-projection" -> new Expect("PREFIX_TUNING", union(common, "encoder_hidden_size",
                    "prefix_projection"), Set.of("adapter_model.safetensors", "ptune_prefix_encoder.safetensors"));
            case "composite" -> new Expect("PROMPT_TUNING", promptTuning,
                    Set.of("adapter_model.safetensors", "ptune_composite.json"));
            case "dynamic" -> new Expect("PTUNE_DYNAMIC_PROMPT", union(common, "generator_hidden_size"),
                    Set.of("ptune_dynamic_prompt.safetensors"));
            default -> throw new AssertionError(method);
        };
        JsonNode config = JsonFiles.MAPPER.readTree(out.resolve("adapter_config.json").toFile());
        Set<String> keys = new TreeSet<>();
        config.fieldNames().forEachRemaining(keys::add);
        assertEquals(new TreeSet<>(expect.keys()), keys, method);
        assertEquals(expect.peftType(), config.get("peft_type").asText());
        assertTrue(config.get("inference_mode").asBoolean());
        Set<String> files = new TreeSet<>(Arrays.asList(out.toFile().list()));
        assertEquals(new TreeSet<>(union(expect.files(), "adapter_config.json")), files, method);
        if (expect.peftType().equals("PREFIX_TUNING")) {
            // GQA: PEFT overwrites token_dim with head_dim * kv heads and num_attention_heads with the kv heads.
            assertEquals(8 * 4, config.get("token_dim").asInt());
            assertEquals(4, config.get("num_attention_heads").asInt());
            assertEquals(5, config.get("num_layers").asInt());
        }
    }

    private static Set<String> union(Set<String> base, String... more) {
        Set<String> out = new TreeSet<>(base);
        out.addAll(List.of(more));
        return out;
    }

    /**
     * With a stateless AdamW (beta1 = beta2 = 0: the update depends on the current gradient only),
     * a constant schedule and one example (so every step sees the same batch), N/2 steps + save +
     * loadForTraining + N/2 steps reach the parameters of N steps straight: the adapter's files
     * hold the whole training state. (Within 1e-5, not bit for bit: torch's lerp form of the first
     * moment, m + (g - m)(1 - beta1), gives exactly g only from a zero moment, so the straight run
     * carries last-bit rounding; losing any state would move parameters by about the learning
     * rate, 1e-2.)
     */
    @ParameterizedTest
    @MethodSource("methods")
    void resumingFromTheAdapterContinuesLikeOneRun(String method) {
        AlpacaDataset batch = train.head(1);
        TrainingConfig two = stateless(2);
        Map<String, float[]> straight;
        try (Trainer trainer = Trainer.create(model, TestMethods.get(method), stateless(4), batch)) {
            trainer.train();
            straight = trainer.prompt().readAll(trainer.prompt().parameterNames());
        }
        Path out = dir.resolve("half");
        try (Trainer trainer = Trainer.create(model, TestMethods.get(method), two, batch)) {
            trainer.train();
            PromptAdapter.save(trainer.prompt(), out);
        }
        try (PromptModule resumed = PromptAdapter.loadForTraining(out, model);
                Trainer trainer = new Trainer(model, resumed, two, batch)) {
            trainer.train();
            for (Map.Entry<String, float[]> p : straight.entrySet()) {
                // Last-bit rounding of the straight run (see above) against moves of ~lr = 1e-2.
                assertArrayEquals(p.getValue(), resumed.read(p.getKey()), 1e-5f, method + ": " + p.getKey());
            }
        }
    }

    private static TrainingConfig stateless(long steps) {
        // epsilon 1e-3 keeps g / (|g| + eps) from amplifying last-bit differences of tiny gradients.
        return TrainingConfig.builder().maxSteps(steps).batchSize(1).maxLength(64).learningRate(0.01).beta1(0)
                .beta2(0).epsilon(1e-3).schedule(LrSchedule.CONSTANT).build();
    }

    @ParameterizedTest
    @MethodSource("methods")
    void kvCacheGenerationEqualsRecomputingTheSequence(String method) {
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get(method))) {
            perturbGenerator(prompt, 2);
            for (long[] input : List.of(STORY, OTHER)) {
                long[] generated = new Generator(model, prompt, GenerationConfig.builder().maxNewTokens(8).build())
                        .generate(List.of(input)).get(0).generatedIds();
                // Greedy decoding by recomputing the whole sequence (no cache), to EOS or 8 tokens.
                long[] recomputed = new long[0];
                while (recomputed.length < 8 && (recomputed.length == 0 || recomputed[recomputed.length - 1] != 2)) {
                    float[] next = Tolerances.last(model.logits(prompt, Tolerances.prefixed(input, recomputed,
                            recomputed.length)));
                    recomputed = Arrays.copyOf(recomputed, recomputed.length + 1);
                    recomputed[recomputed.length - 1] = argmax(next);
                }
                long[] expected = recomputed;
                // The KV cache rounds differently: identical tokens unless a near-tie (Tolerances).
                Tolerances.assertSameGreedyTokens(expected, generated,
                        i -> Tolerances.last(model.logits(prompt, Tolerances.prefixed(input, expected, i))),
                        method + " after " + Arrays.toString(input));
                assertTrue(generated.length == 8 || generated[generated.length - 1] == 2, "stops only at EOS");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("methods")
    void leftPaddedBatchRowsEqualEachRowAlone(String method) {
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get(method))) {
            perturbGenerator(prompt, 3);
            Generator generator = new Generator(model, prompt, GenerationConfig.builder().maxNewTokens(6).build());
            List<long[]> inputs = List.of(STORY, OTHER, new long[] {1, 9});
            var batched = generator.generate(inputs);
            for (int row = 0; row < inputs.size(); row++) {
                long[] input = inputs.get(row);
                long[] alone = generator.generate(List.of(input)).get(0).generatedIds();
                // Another batch shape rounds differently: identical unless a near-tie (Tolerances).
                Tolerances.assertSameGreedyTokens(alone, batched.get(row).generatedIds(),
                        i -> Tolerances.last(model.logits(prompt, Tolerances.prefixed(input, alone, i))),
                        method + " row " + row);
            }
        }
    }

    @Test
    void staticPromptsGiveTheSameVirtualRowsForEveryInputAndDynamicOnesDoNot() {
        for (String method : List.of("prompt-tuning", "p-tuning-lstm", "composite", "dynamic")) {
            try (PromptModule prompt = PromptModule.create(model, TestMethods.get(method))) {
                int n = prompt.inputVirtualTokens();
                float[][] a = model.logits(prompt, STORY);
                float[][] b = model.logits(prompt, OTHER);
                // A virtual position only sees the virtual positions before it (causal mask). The two
                // inputs have other lengths, so the same rows round differently (Tolerances).
                Tolerances.assertClose(Arrays.copyOf(a, n), Arrays.copyOf(b, n), method + " before the generator moves");
                if (method.equals("dynamic")) {
                    perturbGenerator(prompt, 4);
                    a = model.logits(prompt, STORY);
                    b = model.logits(prompt, OTHER);
                    for (int row = 0; row < n; row++) {
                        // ...by far more than rounding once the generator depends on the input.
                        assertTrue(Tolerances.maxDiff(a[row], b[row]) > 100 * Tolerances.fp32(Tolerances.maxAbs(a[row])),
                                "dynamic prompt row " + row + " depends on the input");
                    }
                }
            }
        }
    }

    @Test
    void initialisersFillTheEncoderInputOfEveryInputLevelMethod() {
        long[] textIds = PromptInitializer.textInitIds(model.tokenizer().encode("Once upon a time", true), 4);
        float[] text = model.embed(textIds);
        try (PromptModule p = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(4)
                .initText("Once upon a time").build());
                PromptModule d = PromptModule.create(model, DynamicPromptConfig.builder().numVirtualTokens(4)
                        .initText("Once upon a time").build())) {
            assertArrayEquals(text, p.read("embedding"), "P-tuning: E starts as the text's embeddings");
            assertArrayEquals(text, d.read("embedding"), "dynamic: E starts as the text's embeddings");
            assertFalse(Arrays.equals(text, p.peftEmbeddings()), "the encoder output differs from its input");
        }
        try (PromptModule labels = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(3)
                .labelWords(List.of("happy", "sad")).build())) {
            float[] e = labels.read("embedding");
            assertArrayEquals(Arrays.copyOfRange(e, 0, 64), Arrays.copyOfRange(e, 128, 192), "class i % k");
        }
    }

    @Test
    void fromAdapterWarmStartsAnyInputLevelMethod() {
        Path source = dir.resolve("source");
        float[] values;
        try (PromptModule trained = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(4).seed(9).build())) {
            PromptAdapter.save(trained, source);
            values = trained.peftEmbeddings();
        }
        try (PromptModule warm = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(4)
                .initFromAdapter(source).build());
                PromptModule encoder = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(4)
                        .initFromAdapter(source).build());
                PromptModule dynamic = PromptModule.create(model, DynamicPromptConfig.builder().numVirtualTokens(4)
                        .initFromAdapter(source).build())) {
            assertArrayEquals(values, warm.read("embedding"), "the saved prompt (the encoder output)");
            assertArrayEquals(values, encoder.read("embedding"));
            assertArrayEquals(values, dynamic.read("embedding"));
        }
        io.ptune.InvalidConfigException wrongLength = assertThrows(io.ptune.InvalidConfigException.class,
                () -> PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(5).initFromAdapter(source)
                        .build()));
        assertEquals("initAdapter", wrongLength.field());
        assertTrue(wrongLength.getMessage().contains("4 virtual tokens") && wrongLength.getMessage().contains("5"),
                wrongLength.getMessage());

        Path prefix = dir.resolve("prefix");
        try (PromptModule p = PromptModule.create(model, PrefixTuningConfig.builder().numVirtualTokens(4).build())) {
            PromptAdapter.save(p, prefix);
        }
        PtuneException notInput = assertThrows(PtuneException.class, () -> PromptModule.create(model,
                PromptTuningConfig.builder().numVirtualTokens(4).initFromAdapter(prefix).build()));
        assertTrue(notInput.getMessage().contains("PREFIX_TUNING") && notInput.getMessage().contains("not an input prompt"),
                notInput.getMessage());
        PtuneException missing = assertThrows(PtuneException.class, () -> PromptModule.create(model,
                PromptTuningConfig.builder().numVirtualTokens(4).initFromAdapter(dir.resolve("absent")).build()));
        assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());
    }

    @Test
    void theNativeBridgeRejectsALengthZeroPromptOrPrefix() {
        for (PromptSpecOptions.Method method : PromptSpecOptions.Method.values()) {
            PromptSpecOptions spec = new PromptSpecOptions(method, 0, PromptSpecOptions.EncoderType.MLP, 16, 1, 0.0,
                    false, 1);
            PtuneException e = assertThrows(PtuneException.class,
                    () -> new NativePrompt(model.nativeModel(), spec, null).close());
            assertTrue(e.getMessage().contains("length 0"), method + ": " + e.getMessage());
        }
    }

    @Test
    void prefixAndDynamicPromptsHaveNoFixedInputPrompt() {
        try (PromptModule prefix = PromptModule.create(model, TestMethods.get("prefix"));
                PromptModule dynamic = PromptModule.create(model, TestMethods.get("dynamic"))) {
            assertEquals(0, prefix.inputVirtualTokens());
            assertEquals(4, prefix.numVirtualTokens());
            assertArrayEquals(new long[] {4, 2 * 5 * 32}, prefix.peftEmbeddingsShape());
            assertTrue(assertThrows(PtuneException.class, prefix::inputPrompt).getMessage().contains("keys and values"));
            assertTrue(assertThrows(PtuneException.class, dynamic::peftEmbeddings).getMessage().contains("per input"));
        }
    }

    @Test
    void aPromptOfAnotherModelInstanceIsRejected() {
        try (Model other = Model.load(TestPaths.stories260k());
                PromptModule prompt = PromptModule.create(other, TestMethods.get("prompt-tuning"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.logits(prompt, STORY));
            assertTrue(e.getMessage().contains("another model"), e.getMessage());
        }
    }

    static int argmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) {
            if (row[i] > row[best]) {
                best = i;
            }
        }
        return best;
    }
}
