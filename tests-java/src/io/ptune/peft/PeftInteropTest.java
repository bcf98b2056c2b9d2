package io.ptune.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.internal.JsonFiles;
import io.ptune.model.CausalLm;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Interoperability with Python PEFT on the tiny GQA Llama of tests-java/resources/peft/tiny-llama.
 *
 * <ul>
 *   <li>Our adapters ({@code ours/<case>}, written by {@link OurPeftAdapters}) are committed with
 *       the logits ptune computes for them; regenerating them must reproduce those logits.
 *   <li>{@code torch_reference.py} (plain float64 PyTorch, HF Llama and PEFT semantics written
 *       out) computed {@code reference_logits.json} from the adapter files alone: ptune must agree
 *       within 1e-4.
 *   <li>{@code peft_compare.py} (real transformers + peft; results in tests-java/peft/RESULT.md)
 *       wrote PEFT's own adapters into {@code <case>/adapter} with PEFT's logits in
 *       {@code <case>/expected_logits.json}: they must load here and give the same logits within
 *       1e-4. It also loaded each of our adapters with {@code PeftModel.from_pretrained} and wrote
 *       PEFT's logits to {@code ours/<case>/peft_logits.json}: ptune must agree within 1e-4.
 * </ul>
 */
class PeftInteropTest {
    private static final double TOLERANCE = 1e-4;
    private static final List<String> PEFT_CASES = List.of("p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_projection");

    private static CausalLm model;

    @BeforeAll
    static void load() {
        model = CausalLm.load(TestPaths.tinyLlama());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static Path root() {
        return TestPaths.peftResources();
    }

    /** [input][row][vocab] of a logits JSON file, checking it was made for our inputs. */
    static double[][][] readLogits(Path file) throws IOException {
        JsonNode json = JsonFiles.MAPPER.readTree(file.toFile());
        JsonNode inputs = json.get("inputs");
        assertEquals(OurPeftAdapters.INPUTS.size(), inputs.size(), file + ": inputs");
        for (int i = 0; i < inputs.size(); i++) {
            for (int t = 0; t < inputs.get(i).size(); t++) {
                assertEquals(OurPeftAdapters.INPUTS.get(i)[t], inputs.get(i).get(t).asLong(), file + ": inputs");
            }
        }
        JsonNode logits = json.get("logits");
        double[][][] out = new double[logits.size()][][];
        for (int i = 0; i < logits.size(); i++) {
            out[i] = new double[logits.get(i).size()][];
            for (int r = 0; r < out[i].length; r++) {
                JsonNode row = logits.get(i).get(r);
                out[i][r] = new double[row.size()];
                for (int v = 0; v < row.size(); v++) {
                    out[i][r][v] = row.get(v).asDouble();
                }
            }
        }
        return out;
    }

    static double maxDiff(float[][][] ours, double[][][] theirs, String what) {
        assertEquals(theirs.length, ours.length, what + ": inputs");
        double worst = 0;
        for (int i = 0; i < ours.length; i++) {
            assertEquals(theirs[i].length, ours[i].length, what + ": rows of input " + i);
            for (int r = 0; r < ours[i].length; r++) {
                assertEquals(theirs[i][r].length, ours[i][r].length, what + ": vocabulary");
                for (int v = 0; v < ours[i][r].length; v++) {
                    worst = Math.max(worst, Math.abs(ours[i][r][v] - theirs[i][r][v]));
                }
            }
        }
        return worst;
    }

    @TestFactory
    Stream<DynamicTest> ourAdaptersAreReproducedAndAgreeWithTheTorchReference() {
        return OurPeftAdapters.cases().keySet().stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Path committed = root().resolve("ours").resolve(name);
            double[][][] expected = readLogits(committed.resolve("expected_logits.json"));
            try (PromptModule fresh = OurPeftAdapters.create(model, name);
                    PromptModule loaded = PromptAdapter.load(committed, model)) {
                double regenerated = maxDiff(OurPeftAdapters.logits(model, fresh), expected, name);
                assertTrue(regenerated <= 1e-5, name + ": regenerated adapter drifted from the committed logits by "
                        + regenerated + " (rerun OurPeftAdapters and torch_reference.py if that is intended)");
                float[][][] ours = OurPeftAdapters.logits(model, loaded);
                assertTrue(maxDiff(ours, expected, name) <= 1e-5, name + ": committed adapter");
                double reference = maxDiff(ours, readLogits(committed.resolve("reference_logits.json")), name);
                assertTrue(reference <= TOLERANCE, name + ": ptune vs the float64 torch reference: " + reference);
            }
        }));
    }

    /**
     * PEFT's logits for each of our adapters (PeftModel.from_pretrained, written by
     * peft_compare.py). Dynamic prompts are ptune's own method and have none.
     */
    @TestFactory
    Stream<DynamicTest> peftGivesPtunesLogitsForOurAdapters() {
        return OurPeftAdapters.cases().keySet().stream().filter(name -> !name.equals("dynamic"))
                .map(name -> DynamicTest.dynamicTest(name, () -> {
            Path committed = root().resolve("ours").resolve(name);
            Path peftLogits = committed.resolve("peft_logits.json");
            assertTrue(Files.isRegularFile(peftLogits), peftLogits + " is missing: run tests-java/peft/peft_compare.py");
            try (PromptModule loaded = PromptAdapter.load(committed, model)) {
                double diff = maxDiff(OurPeftAdapters.logits(model, loaded), readLogits(peftLogits), name);
                assertTrue(diff <= TOLERANCE, name + ": ptune vs PEFT on ptune's adapter differ by " + diff);
            }
        }));
    }

    /** PEFT's own adapters (written by peft_compare.py with PEFT 0.21) load here and give PEFT's logits. */
    @TestFactory
    Stream<DynamicTest> peftWrittenAdaptersLoadAndGiveTheSameLogits() {
        return PEFT_CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Path caseDir = root().resolve(name);
            assertTrue(Files.isDirectory(caseDir.resolve("adapter")),
                    caseDir.resolve("adapter") + " is missing: run tests-java/peft/peft_compare.py");
            try (PromptModule loaded = PromptAdapter.load(caseDir.resolve("adapter"), model)) {
                double diff = maxDiff(OurPeftAdapters.logits(model, loaded),
                        readLogits(caseDir.resolve("expected_logits.json")), name);
                assertTrue(diff <= TOLERANCE, name + ": ptune vs PEFT logits differ by " + diff);
            }
        }));
    }
}
