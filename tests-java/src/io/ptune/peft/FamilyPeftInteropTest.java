package io.ptune.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * ptune's adapters for GPT-2, BLOOM and BERT in Python PEFT: the adapters ptune wrote
 * ({@code families/<case>/ours/<method>/}, {@link OurFamilyAdapters}) loaded with PEFT 0.21's
 * {@code PeftModel.from_pretrained} give what ptune computes ({@code peft_outputs.safetensors},
 * written by {@code tests-java/peft/families_ours.py}). The other direction, PEFT's adapters here,
 * is {@code io.ptune.model.HfFamiliesTest}.
 */
class FamilyPeftInteropTest {
    private static Path root() {
        return TestPaths.root().resolve("tests-java/resources/families");
    }

    @TestFactory
    Stream<DynamicTest> peftGivesPtunesOutputsForOurAdapters() {
        return OurFamilyAdapters.CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Path caseDir = root().resolve(name);
            JsonNode inputs = JsonFiles.MAPPER.readTree(caseDir.resolve("reference.json").toFile()).get("inputs");
            boolean hidden = name.equals("bert_base");
            double worst = 0;
            try (Model model = Model.load(caseDir.resolve("model"))) {
                for (String method : OurFamilyAdapters.methods().keySet()) {
                    Path adapter = caseDir.resolve("ours").resolve(method);
                    Path peftOutputs = adapter.resolve("peft_outputs.safetensors");
                    assertTrue(Files.isRegularFile(peftOutputs), peftOutputs + " is missing: run families_ours.py");
                    var peft = Safetensors.open(peftOutputs);
                    try (PromptModule prompt = PromptAdapter.load(adapter, model)) {
                        for (int i = 0; i < inputs.size(); i++) {
                            long[] ids = new long[inputs.get(i).size()];
                            for (int t = 0; t < ids.length; t++) {
                                ids[t] = inputs.get(i).get(t).asLong();
                            }
                            float[][] ours = hidden ? model.hiddenStates(prompt, ids, null) : model.logits(prompt, ids);
                            var want = peft.readFloat((hidden ? "last_hidden_state/" : "logits/") + i);
                            int width = (int) want.shape()[1];
                            float[][] theirs = new float[(int) want.shape()[0]][];
                            for (int r = 0; r < theirs.length; r++) {
                                theirs[r] = Arrays.copyOfRange(want.data(), r * width, (r + 1) * width);
                            }
                            assertEquals(theirs.length, ours.length, name + " " + method + ": rows (virtual first)");
                            String tensor = (hidden ? "last_hidden_state/" : "logits/") + i;
                            double referenceError = Double.parseDouble(peft.metadata().get("fp32_error/" + tensor));
                            worst = Math.max(worst, Tolerances.assertClose(theirs, ours, referenceError,
                                    name + " " + method + ": PEFT on ptune's adapter, input " + i));
                        }
                    }
                }
            }
            System.out.printf("%s: max |ptune - PEFT on ptune's adapters| %.2e%n", name, worst);
        }));
    }
}
