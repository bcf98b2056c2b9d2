package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The PET verbalizer against OpenPrompt's semantics re-computed in float64
 * ({@code tests-java/resources/classification/verbalizer.*}, CLASSIFICATION.md section 2): template
 * pieces and label words tokenised as OpenPrompt's wrappers do (BERT: [MASK] slot inside [CLS] …
 * [SEP]; GPT-2: cut at the mask, next-token slot), then the class scores of every multi-token
 * handler, with and without contextual calibration (content-free "" and "N/A"), for label words of
 * two tokens, two words per class and a padded word slot. And the soft verbalizer's initial scores
 * (class vectors from the first label word's output embeddings).
 */
class VerbalizerReferenceTest {
    private static final String TEMPLATE = "{text} It was {mask}.";

    @TestFactory
    Stream<DynamicTest> verbalizerMatchesOpenPrompt() throws Exception {
        Path dir = SeqClsReferenceTest.root();
        JsonNode reference = JsonFiles.MAPPER.readTree(dir.resolve("verbalizer.json").toFile());
        var tensors = Safetensors.open(dir.resolve("verbalizer.safetensors"));
        List<String> texts = new ArrayList<>();
        reference.get("texts").forEach(t -> texts.add(t.asText()));
        List<DynamicTest> tests = new ArrayList<>();
        for (var family : reference.get("families").properties()) {
            String name = family.getKey();
            JsonNode spec = family.getValue();
            tests.add(DynamicTest.dynamicTest(name, () -> {
                List<String> labels = List.of("c0", "c1", "c2");
                Map<String, List<String>> words = new LinkedHashMap<>();
                for (int c = 0; c < 3; c++) {
                    List<String> list = new ArrayList<>();
                    spec.get("label_words").get(c).forEach(w -> list.add(w.asText()));
                    words.put(labels.get(c), list);
                }
                double logitError = spec.get("slot_logits_fp32_error").asDouble();
                double worst = 0;
                try (Model model = Model.load(TestPaths.root().resolve(spec.get("model").asText()))) {
                    for (String handler : List.of("first", "mean", "max")) {
                        for (boolean calibrate : List.of(false, true)) {
                            ClassificationConfig config = ClassificationConfig.builder()
                                    .head(ClassificationHead.VERBALIZER).template(TEMPLATE)
                                    .verbalizer(new Verbalizer(words)).multiToken(MultiTokenRule.parse(handler))
                                    .calibrate(calibrate).build();
                            try (PromptClassifier classifier = PromptClassifier.create(model, null, config, labels, 64)) {
                                checkEncoding(name, spec, texts, classifier);
                                List<ClassifierInput> inputs = new ArrayList<>();
                                texts.forEach(t -> inputs.add(classifier.encode(t, null)));
                                float[][] ours = classifier.scores(inputs);
                                var want = tensors.readFloat(name + "/scores/" + handler + "/log_softmax/"
                                        + (calibrate ? "empty_na" : "none"));
                                float[][] expected = rows(want.data(), 3);
                                // Scores are differences of logs of a softmax over the label words' logits:
                                // a few times the slot logits' own fp32 error (calibration divides twice).
                                double tolerance = Math.max(Tolerances.fp32(Tolerances.maxAbs(expected)), 8 * logitError);
                                double diff = Tolerances.maxDiff(expected, ours);
                                assertTrue(diff <= tolerance, name + " " + handler + " calibrate=" + calibrate
                                        + ": scores differ by " + diff + " > " + tolerance);
                                worst = Math.max(worst, diff);
                            }
                        }
                    }
                    worst = Math.max(worst, checkSoftVerbalizer(name, model, tensors, texts, words, labels, logitError));
                }
                System.out.printf("%s: verbalizer scores, max |ptune - float64 OpenPrompt| %.2e%n", name, worst);
            }));
        }
        return tests.stream();
    }

    private static void checkEncoding(String name, JsonNode spec, List<String> texts, PromptClassifier classifier) {
        for (int i = 0; i < texts.size(); i++) {
            JsonNode want = spec.get("inputs").get(i);
            ClassifierInput input = classifier.encode(texts.get(i), null);
            assertArrayEquals(longs(want.get("input_ids")), input.ids(), name + ": input ids of '" + texts.get(i) + "'");
            assertEquals(want.get("slot").asInt(), input.slot(), name + ": slot of '" + texts.get(i) + "'");
        }
        for (var entry : spec.get("content_free").properties()) {
            ClassifierInput input = classifier.encode(entry.getKey(), null);
            assertArrayEquals(longs(entry.getValue().get("input_ids")), input.ids(), name + ": content-free input");
            assertEquals(entry.getValue().get("slot").asInt(), input.slot(), name + ": content-free slot");
        }
        List<List<long[]>> wordIds = new ArrayList<>(classifier.labelWordIds().values());
        for (int c = 0; c < 3; c++) {
            JsonNode want = spec.get("label_word_ids").get(c);
            assertEquals(want.size(), wordIds.get(c).size(), name + ": words of class " + c);
            for (int w = 0; w < want.size(); w++) {
                assertArrayEquals(longs(want.get(w)), wordIds.get(c).get(w), name + ": label word " + c + "/" + w);
            }
        }
    }

    /** At initialisation the soft verbalizer scores the slot's hidden state against the label-word vectors. */
    private static double checkSoftVerbalizer(String name, Model model, Safetensors.SafetensorsFile tensors,
            List<String> texts, Map<String, List<String>> words, List<String> labels, double logitError) {
        ClassificationConfig config = ClassificationConfig.builder().head(ClassificationHead.SOFT_VERBALIZER)
                .template(TEMPLATE).verbalizer(new Verbalizer(words)).build();
        try (PromptClassifier classifier = PromptClassifier.create(model, null, config, labels, 64)) {
            float[][] vectors = rows(tensors.readFloat(name + "/soft_verbalizer/class_vectors").data(),
                    model.architecture().hiddenSize());
            float[][] ours = rows(classifier.readHead("soft_verbalizer.weight"), model.architecture().hiddenSize());
            Tolerances.assertClose(vectors, ours, name + ": soft verbalizer class vectors (first word's mean rows)");
            List<ClassifierInput> inputs = new ArrayList<>();
            texts.forEach(t -> inputs.add(classifier.encode(t, null)));
            float[][] expected = rows(tensors.readFloat(name + "/soft_verbalizer/scores").data(), 3);
            float[][] scores = classifier.scores(inputs);
            // The class vectors dot the slot's hidden state: the vocabulary logits' fp32 error, per word.
            double tolerance = Math.max(Tolerances.fp32(Tolerances.maxAbs(expected)), 4 * logitError);
            double diff = Tolerances.maxDiff(expected, scores);
            assertTrue(diff <= tolerance, name + ": soft verbalizer scores differ by " + diff + " > " + tolerance);
            return diff;
        }
    }

    static float[][] rows(float[] flat, int width) {
        float[][] out = new float[flat.length / width][];
        for (int r = 0; r < out.length; r++) {
            out[r] = java.util.Arrays.copyOfRange(flat, r * width, (r + 1) * width);
        }
        return out;
    }

    static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }
}
