package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * ptune's SEQ_CLS classifiers in Python PEFT: the classifiers ptune wrote ({@link OurClassifiers},
 * {@code classification/ours/<case>/<method>/}) loaded into transformers' {@code
 * *ForSequenceClassification} with PEFT 0.21's {@code PeftModel.from_pretrained} give the logits
 * ptune computes ({@code peft_outputs.safetensors}, written by
 * {@code tests-java/peft/classification_ours.py}). The other direction is {@link SeqClsReferenceTest}.
 */
class ClassifierPeftInteropTest {
    @TestFactory
    Stream<DynamicTest> peftGivesPtunesLogits() throws Exception {
        Path root = SeqClsReferenceTest.root();
        JsonNode cases = JsonFiles.MAPPER.readTree(root.resolve("seq_cls.json").toFile()).get("cases");
        return OurClassifiers.CASES.keySet().stream().sorted().map(name -> DynamicTest.dynamicTest(name, () -> {
            JsonNode inputs = cases.get(name).get("inputs");
            double worst = 0;
            try (Model model = Model.load(TestPaths.root().resolve(OurClassifiers.CASES.get(name)))) {
                for (String method : OurClassifiers.methods().keySet()) {
                    Path dir = root.resolve("ours").resolve(name).resolve(method);
                    Path outputs = dir.resolve("peft_outputs.safetensors");
                    assertTrue(Files.isRegularFile(outputs), outputs + " is missing: run classification_ours.py");
                    var peft = Safetensors.open(outputs);
                    try (PromptClassifier classifier = PromptClassifier.load(model, dir)) {
                        for (String input : List.of("0", "1")) {
                            JsonNode spec = inputs.get(input);
                            long[] ids = VerbalizerReferenceTest.longs(spec.get("input_ids").get(0));
                            long[] types = spec.has("token_type_ids")
                                    ? VerbalizerReferenceTest.longs(spec.get("token_type_ids").get(0)) : null;
                            List<ClassifierInput> batch = new ArrayList<>(List.of(new ClassifierInput(ids,
                                    model.architecture().usesTokenTypes() && types == null ? new long[ids.length]
                                            : types, -1)));
                            float[][] ours = classifier.scores(batch);
                            float[][] theirs = {peft.readFloat("logits/" + input).data()};
                            double referenceError = Double.parseDouble(peft.metadata().get("fp32_error/logits/" + input));
                            worst = Math.max(worst, Tolerances.assertClose(theirs, ours, referenceError,
                                    name + " " + method + ": PEFT on ptune's classifier, input " + input));
                        }
                    }
                }
            }
            System.out.printf("%s: max |ptune - PEFT on ptune's SEQ_CLS classifiers| %.2e%n", name, worst);
        }));
    }
}
