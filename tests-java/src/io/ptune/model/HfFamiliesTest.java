package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.internal.JsonFiles;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * GPT-2, BLOOM and BERT against transformers 5.17 + PEFT 0.21 themselves: tiny random models,
 * tokenizers, PEFT adapters of every prompt method and what transformers and PEFT compute with them,
 * written by {@code tests-java/peft/hf_families.py} (semantics in {@code tests-java/peft/FAMILIES.md}).
 * Every comparison is within fp32 rounding of the reference's magnitude ({@link Tolerances}).
 */
class HfFamiliesTest {
    private static final List<String> CASES = List.of("gpt2", "bloom", "bloom_pow2", "bert", "bert_base");
    private static final List<String> METHODS = List.of("prompt_tuning", "p_tuning", "prefix", "prefix_projection");

    private static Path root() {
        return TestPaths.root().resolve("tests-java/resources/families");
    }

    private record Reference(Path dir, JsonNode json, Safetensors.SafetensorsFile tensors) {
        static Reference of(String name) throws IOException {
            Path dir = root().resolve(name);
            return new Reference(dir, JsonFiles.MAPPER.readTree(dir.resolve("reference.json").toFile()),
                    Safetensors.open(dir.resolve("reference.safetensors")));
        }

        long[] input(int i) {
            return longs(json.get("inputs").get(i));
        }

        /** The reference rows [rows][width] of a stored tensor. */
        float[][] rows(String name) {
            var t = tensors.readFloat(name);
            int width = (int) t.shape()[t.shape().length - 1];
            float[][] out = new float[t.data().length / width][];
            for (int r = 0; r < out.length; r++) {
                out[r] = Arrays.copyOfRange(t.data(), r * width, (r + 1) * width);
            }
            return out;
        }

        /** The reference's own fp32 rounding error on a tensor (max |fp32 - float64|, hf_families.py). */
        double fp32Error(String name) {
            return json.get("fp32_error").get(name).asDouble();
        }

        boolean decoder() {
            return !json.get("case").asText().startsWith("bert");
        }

        /** logits for decoders and BertForMaskedLM, last_hidden_state for BertModel. */
        String output() {
            return json.get("case").asText().equals("bert_base") ? "last_hidden_state" : "logits";
        }
    }

    private static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }

    private static float[][] compute(Model model, PromptModule prompt, long[] ids, long[] types, String output) {
        return output.equals("logits") ? model.logits(prompt, ids) : model.hiddenStates(prompt, ids, types);
    }

    @TestFactory
    Stream<DynamicTest> everyFamilyGivesTransformersOutputsBareAndWithEveryPeftMethod() {
        return CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Reference ref = Reference.of(name);
            try (Model model = Model.load(ref.dir().resolve("model"))) {
                assertEquals(ref.decoder(), model.architecture().causal(), name);
                String output = ref.output();
                double bareWorst = 0, peftWorst = 0;
                // Bare model: input 0 (for BERT a sentence pair with its token types) and input 1.
                long[] types0 = ref.json().has("token_type_ids") ? longs(ref.json().get("token_type_ids").get(0)) : null;
                for (int i = 0; i < 2; i++) {
                    long[] ids = ref.input(i);
                    float[][] ours = output.equals("logits") && types0 != null && i == 0
                            ? viaNative(model, null, ids, types0, true)
                            : compute(model, null, ids, i == 0 ? types0 : null, output);
                    bareWorst = Math.max(bareWorst,
                            Tolerances.assertClose(ref.rows("bare/" + output + "/" + i), ours,
                                    ref.fp32Error("bare/" + output + "/" + i), name + " bare, input " + i));
                }
                for (String method : METHODS) {
                    try (PromptModule prompt = PromptAdapter.load(ref.dir().resolve(method), model)) {
                        for (int i = 0; i < 2; i++) {
                            // PEFT drops token types for prompt methods: all 0.
                            float[][] ours = compute(model, prompt, ref.input(i), null, output);
                            float[][] want = ref.rows(method + "/" + output + "/" + i);
                            assertEquals(want.length, ours.length, name + " " + method + ": rows (virtual first)");
                            peftWorst = Math.max(peftWorst, Tolerances.assertClose(want, ours,
                                    ref.fp32Error(method + "/" + output + "/" + i), name + " " + method + ", input " + i));
                            // The adapter matters: far more than rounding away from the bare model's text rows.
                            float[][] bare = compute(model, null, ref.input(i), null, output);
                            float[][] text = Arrays.copyOfRange(ours, ours.length - bare.length, ours.length);
                            assertTrue(Tolerances.maxDiff(text, bare) > 100 * Tolerances.fp32(Tolerances.maxAbs(bare)),
                                    name + " " + method + " changes the outputs");
                        }
                    }
                }
                System.out.printf("%s: max |ptune - transformers| bare %.2e, with PEFT's 4 adapters %.2e (%s)%n", name,
                        bareWorst, peftWorst, output);
            }
        }));
    }

    /** Row 1 of the padded batch (left padding for decoders, right for BERT) gives its outputs alone. */
    @TestFactory
    Stream<DynamicTest> paddedBatchRowsGiveTheirOwnOutputs() {
        return CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Reference ref = Reference.of(name);
            JsonNode batch = ref.json().get("batch");
            long[] ids = flat(batch.get("input_ids"));
            long[] mask = flat(batch.get("attention_mask"));
            int rows = batch.get("input_ids").size(), width = batch.get("input_ids").get(0).size();
            try (Model model = Model.load(ref.dir().resolve("model"))) {
                String output = ref.output();
                for (String method : List.of("bare", "prompt_tuning", "prefix")) {
                    try (PromptModule prompt = method.equals("bare") ? null
                            : PromptAdapter.load(ref.dir().resolve(method), model)) {
                        int virtual = prompt == null ? 0 : prompt.inputVirtualTokens();
                        boolean logits = output.equals("logits");
                        float[] flatOut = logits
                                ? model.nativeModel().logits(prompt == null ? null : prompt.nativePrompt(), ids, mask, null, rows, width)
                                : model.nativeModel().hiddenStates(prompt == null ? null : prompt.nativePrompt(), ids, mask, null, rows, width);
                        int w = logits ? model.architecture().vocabSize() : model.architecture().hiddenSize();
                        // Real positions of row 1: ptune takes positions from the mask, so they equal
                        // input 1 alone (transformers' GPT-2 forward counts padding too; its generate()
                        // does not: FAMILIES.md), hence input 1's reference for every family.
                        long[] row1Mask = Arrays.copyOfRange(mask, width, 2 * width);
                        float[][] want = ref.rows(method + "/" + output + "/1");
                        float[][] ours = new float[want.length][];
                        int k = 0;
                        for (int r = 0; r < virtual + width; r++) {
                            boolean real = r < virtual || row1Mask[r - virtual] == 1;
                            if (real) {
                                int offset = ((virtual + width) + r) * w;
                                ours[k++] = Arrays.copyOfRange(flatOut, offset, offset + w);
                            }
                        }
                        assertEquals(want.length, k, name + " " + method + ": real rows");
                        Tolerances.assertClose(want, ours, ref.fp32Error(method + "/" + output + "/1"),
                                name + " " + method + ", padded row");
                    }
                }
            }
        }));
    }

    private static long[] flat(JsonNode rows) {
        return Stream.of(rows).flatMap(r -> {
            java.util.List<Long> out = new java.util.ArrayList<>();
            r.forEach(row -> row.forEach(v -> out.add(v.asLong())));
            return out.stream();
        }).mapToLong(Long::longValue).toArray();
    }

    private static float[][] viaNative(Model model, PromptModule prompt, long[] ids, long[] types, boolean logits) {
        long[] mask = new long[ids.length];
        Arrays.fill(mask, 1);
        int w = logits ? model.architecture().vocabSize() : model.architecture().hiddenSize();
        float[] flat = logits ? model.nativeModel().logits(null, ids, mask, types, 1, ids.length)
                : model.nativeModel().hiddenStates(null, ids, mask, types, 1, ids.length);
        float[][] out = new float[flat.length / w][];
        for (int r = 0; r < out.length; r++) {
            out[r] = Arrays.copyOfRange(flat, r * w, (r + 1) * w);
        }
        return out;
    }

    /** Greedy decoding through the KV cache gives transformers' / PEFT's generate() tokens. */
    @TestFactory
    Stream<DynamicTest> decodersGenerateTransformersGreedyTokens() {
        return Stream.of("gpt2", "bloom", "bloom_pow2").map(name -> DynamicTest.dynamicTest(name, () -> {
            Reference ref = Reference.of(name);
            try (Model model = Model.load(ref.dir().resolve("model"))) {
                for (String method : List.of("bare", "prompt_tuning", "p_tuning", "prefix", "prefix_projection")) {
                    try (PromptModule prompt = method.equals("bare") ? null
                            : PromptAdapter.load(ref.dir().resolve(method), model)) {
                        Generator generator = new Generator(model, prompt,
                                GenerationConfig.builder().maxNewTokens(10).greedy(true).build());
                        JsonNode greedy = ref.json().get("outputs").get(method).get("greedy");
                        for (int i = 0; i < 2; i++) {
                            long[] input = ref.input(i);
                            long[] want = longs(greedy.get(i));
                            long[] got = generator.generate(List.of(input)).get(0).generatedIds();
                            // Identical tokens unless a near-tie that rounding may break either way.
                            Tolerances.assertSameGreedyTokens(want, got,
                                    t -> Tolerances.last(model.logits(prompt, Tolerances.prefixed(input, want, t))),
                                    name + " " + method + " greedy after input " + i);
                        }
                    }
                }
            }
        }));
    }

    @TestFactory
    Stream<DynamicTest> tokenizersGiveTransformersIds() {
        return CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Reference ref = Reference.of(name);
            try (Model model = Model.load(ref.dir().resolve("model"))) {
                JsonNode texts = ref.json().get("texts");
                for (int i = 0; i < texts.size(); i++) {
                    String text = texts.get(i).asText();
                    assertArrayEquals(longs(ref.json().get("text_ids").get(i)), model.tokenizer().encode(text, true),
                            name + ": ids of '" + text + "'");
                }
            }
        }));
    }

    @Test
    void encodersRefuseGenerationAndCheckpointsWithoutAHeadRefuseLogits() throws IOException {
        try (Model bert = Model.load(root().resolve("bert/model"));
                Model base = Model.load(root().resolve("bert_base/model"))) {
            assertFalse(bert.architecture().causal());
            IllegalArgumentException generate = assertThrows(IllegalArgumentException.class,
                    () -> new Generator(bert, null, GenerationConfig.builder().build()));
            assertTrue(generate.getMessage().contains("generation needs a decoder"), generate.getMessage());
            IllegalStateException logits = assertThrows(IllegalStateException.class,
                    () -> base.logits(null, new long[] {2, 3}));
            assertTrue(logits.getMessage().contains("no LM or MLM head"), logits.getMessage());
        }
    }
}
