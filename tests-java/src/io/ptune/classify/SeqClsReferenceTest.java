package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * PEFT's SEQ_CLS adapters (prompt tuning, P-tuning, prefix tuning, each with its trained
 * {@code classifier} / {@code score} head) loaded by {@link PromptClassifier#load} give the logits
 * transformers' {@code *ForSequenceClassification} + PEFT 0.21 compute
 * ({@code tests-java/resources/classification/seq_cls*}, written by
 * {@code tests-java/peft/classification_refs.py}; CLASSIFICATION.md).
 *
 * <p>Compared: every unpadded input and every padded row that transformers reads where ptune's rule
 * (the row of the mask's last real token) reads too. Where transformers reads elsewhere (a decoder
 * with a prefix skips an input's trailing pad id; right-padded prompt-tuning rows read a padding
 * column) the test asserts that the reference says so, and skips the row.
 */
class SeqClsReferenceTest {
    static Path root() {
        return TestPaths.root().resolve("tests-java/resources/classification");
    }

    @TestFactory
    Stream<DynamicTest> peftSeqClsAdaptersGiveTransformersLogits() throws Exception {
        JsonNode reference = JsonFiles.MAPPER.readTree(root().resolve("seq_cls.json").toFile());
        var tensors = Safetensors.open(root().resolve("seq_cls.safetensors"));
        List<DynamicTest> tests = new ArrayList<>();
        for (var caseEntry : reference.get("cases").properties()) {
            String name = caseEntry.getKey();
            JsonNode spec = caseEntry.getValue();
            tests.add(DynamicTest.dynamicTest(name, () -> {
                int compared = 0;
                double worst = 0;
                try (Model model = Model.load(TestPaths.root().resolve(spec.get("base_model").asText()))) {
                    for (var methodEntry : spec.get("methods").properties()) {
                        String method = methodEntry.getKey();
                        JsonNode perInput = methodEntry.getValue().get("inputs");
                        int virtual = methodEntry.getValue().get("virtual_tokens").asInt();
                        boolean prefix = method.equals("prefix");
                        try (PromptClassifier classifier = PromptClassifier.load(model,
                                root().resolve("seq_cls").resolve(name).resolve(method))) {
                            assertEquals(List.of("LABEL_0", "LABEL_1", "LABEL_2"), classifier.labels());
                            for (var inputEntry : spec.get("inputs").properties()) {
                                String input = inputEntry.getKey();
                                JsonNode ids = inputEntry.getValue().get("input_ids");
                                JsonNode mask = inputEntry.getValue().get("attention_mask");
                                JsonNode types = inputEntry.getValue().get("token_type_ids");
                                JsonNode info = perInput.get(input);
                                var want = tensors.readFloat(name + "/" + method + "/f32/logits/" + input);
                                for (int row = 0; row < ids.size(); row++) {
                                    long[] rowIds = realTokens(ids.get(row), mask.get(row));
                                    int theirs = info.get("head_reads_row").get(row).asInt();
                                    // ptune reads [CLS] / the first virtual token (encoders), or the last real token.
                                    int ours = model.architecture().causal()
                                            ? (prefix ? 0 : virtual) + rowIds.length - 1 + leftPadding(mask.get(row))
                                            : 0;
                                    if (theirs != ours) {
                                        assertNotEquals(Boolean.TRUE, info.has("row_matches_unpadded_input")
                                                ? info.get("row_matches_unpadded_input").get(row).asBoolean() : null,
                                                name + " " + method + " " + input + " row " + row);
                                        continue;
                                    }
                                    if (input.equals("batch_left")) {
                                        continue;  // positions there come from arange, not the mask: not a target
                                    }
                                    long[] rowTypes = types == null ? null : realTokens(types.get(row), mask.get(row));
                                    float[] scores = classifier.scores(List.of(new ClassifierInput(rowIds,
                                            model.architecture().usesTokenTypes()
                                                    ? (rowTypes == null ? new long[rowIds.length] : rowTypes) : null,
                                            -1)))[0];
                                    float[] expected = Arrays.copyOfRange(want.data(), row * 3, row * 3 + 3);
                                    worst = Math.max(worst, Tolerances.assertClose(new float[][] {expected},
                                            new float[][] {scores}, info.get("fp32_error").asDouble(),
                                            name + " " + method + " input " + input + " row " + row));
                                    compared++;
                                }
                            }
                        }
                    }
                }
                System.out.printf("%s: %d SEQ_CLS rows, max |ptune - transformers+PEFT| %.2e%n", name, compared, worst);
            }));
        }
        return tests.stream();
    }

    private static long[] realTokens(JsonNode values, JsonNode mask) {
        List<Long> out = new ArrayList<>();
        for (int t = 0; t < values.size(); t++) {
            if (mask.get(t).asInt() == 1) {
                out.add(values.get(t).asLong());
            }
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    private static int leftPadding(JsonNode mask) {
        int n = 0;
        while (n < mask.size() && mask.get(n).asInt() == 0) {
            n++;
        }
        return n;
    }
}
