package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.internal.JsonFiles;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every architecture ptune reads against transformers 5.17 itself: tiny random Qwen2 (q/k/v
 * biases), Mistral and Llama-with-biases models and a PEFT prefix adapter for each, written with
 * transformers' logits and greedy tokens by {@code tests-java/peft/hf_architectures.py}.
 */
class HfArchitecturesTest {
    /** Must match INPUTS in hf_architectures.py. */
    private static final List<long[]> INPUTS = List.of(new long[] {1, 45, 300, 7, 99, 12}, new long[] {1, 260, 12});

    private static Path root() {
        return TestPaths.root().resolve("tests-java/resources/hf");
    }

    /**
     * max |ptune - transformers| over the logits of every input, asserted within fp32 rounding of
     * the logits' magnitude (both sides round, each its own way: Tolerances).
     */
    private static double assertClose(JsonNode expected, Model model, PromptModule prompt, String what) {
        double worst = 0, largest = 0;
        for (int i = 0; i < INPUTS.size(); i++) {
            float[][] ours = model.logits(prompt, INPUTS.get(i));
            JsonNode theirs = expected.get(i);
            assertEquals(theirs.size(), ours.length, what + ": positions of input " + i);
            for (int t = 0; t < ours.length; t++) {
                assertEquals(theirs.get(t).size(), ours[t].length, what + ": vocabulary");
                for (int v = 0; v < ours[t].length; v++) {
                    double want = theirs.get(t).get(v).asDouble();
                    worst = Math.max(worst, Math.abs(ours[t][v] - want));
                    largest = Math.max(largest, Math.abs(want));
                }
            }
        }
        assertTrue(worst <= Tolerances.fp32(largest), what + ": ptune vs transformers logits differ by " + worst
                + " (logits up to " + largest + ")");
        return worst;
    }

    @TestFactory
    Stream<DynamicTest> logitsEqualTransformersBareAndWithAPeftPrefix() {
        return Stream.of("qwen2", "mistral", "llama_biases", "mistral_window", "qwen2_window", "llama3_rope",
                "linear_rope").map(name -> DynamicTest.dynamicTest(name, () -> {
            Path dir = root().resolve(name);
            JsonNode expected = readLogits(dir);
            try (Model model = Model.load(dir.resolve("model"))) {
                double bare = assertClose(expected.get("bare"), model, null, name);
                try (PromptModule prefix = PromptAdapter.load(dir.resolve("prefix"), model)) {
                    double withPrefix = assertClose(expected.get("prefix"), model, prefix, name + " + PEFT's prefix");
                    System.out.printf("%s: max |logit difference| bare %.2e, with PEFT's prefix %.2e%n", name, bare,
                            withPrefix);
                }
                Generator generator = new Generator(model, null,
                        GenerationConfig.builder().maxNewTokens(12).greedy(true).build());
                for (int i = 0; i < INPUTS.size(); i++) {
                    JsonNode theirs = expected.get("greedy").get(i);
                    long[] want = new long[theirs.size()];
                    for (int t = 0; t < want.length; t++) {
                        want[t] = theirs.get(t).asLong();
                    }
                    long[] input = INPUTS.get(i);
                    // transformers' tokens, unless a near-tie that rounding may break either way (Tolerances).
                    Tolerances.assertSameGreedyTokens(want, generator.generate(List.of(input)).get(0).generatedIds(),
                            t -> Tolerances.last(model.logits(null, Tolerances.prefixed(input, want, t))),
                            name + ": greedy tokens after input " + i);
                }
            }
        }));
    }

    private static JsonNode readLogits(Path dir) throws IOException {
        JsonNode json = JsonFiles.MAPPER.readTree(dir.resolve("logits.json").toFile());
        JsonNode inputs = json.get("inputs");
        for (int i = 0; i < INPUTS.size(); i++) {
            for (int t = 0; t < INPUTS.get(i).length; t++) {
                assertEquals(INPUTS.get(i)[t], inputs.get(i).get(t).asLong(), "inputs of logits.json");
            }
        }
        return json;
    }
}
