package io.ptune.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
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
 *       within fp32 rounding of the logits' magnitude ({@link io.ptune.Tolerances}).
 *   <li>{@code peft_compare.py} (real transformers + peft; results in tests-java/peft/RESULT.md)
 *       wrote PEFT's own adapters into {@code <case>/adapter} with PEFT's logits in
 *       {@code <case>/expected_logits.json}: they must load here and give the same logits, as
 *       above. It also loaded each of our adapters with {@code PeftModel.from_pretrained} and wrote
 *       PEFT's logits to {@code ours/<case>/peft_logits.json}: ptune must agree, as above.
 * </ul>
 */
class PeftInteropTest {
    private static final List<String> PEFT_CASES = List.of("p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_projection");

    private static Model model;

    @BeforeAll
    static void load() {
        model = Model.load(TestPaths.tinyLlama());
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

    /** max |x| over a logits file: the magnitude the comparisons are relative to. */
    static double maxAbs(double[][][] logits) {
        double m = 0;
        for (double[][] input : logits) {
            for (double[] row : input) {
                for (double v : row) {
                    m = Math.max(m, Math.abs(v));
                }
            }
        }
        return m;
    }

    /** ours within fp32 rounding of theirs' magnitude (Tolerances); returns the difference. */
    static double assertClose(float[][][] ours, double[][][] theirs, String what) {
        double diff = maxDiff(ours, theirs, what), tolerance = Tolerances.fp32(maxAbs(theirs));
        assertTrue(diff <= tolerance, what + ": logits differ by " + diff + ", more than fp32 rounding " + tolerance);
        return diff;
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
                // The committed logits were computed on another machine: equal up to fp32 rounding.
                assertClose(OurPeftAdapters.logits(model, fresh), expected, name
                        + ": the regenerated adapter drifted from the committed logits (rerun OurPeftAdapters and"
                        + " torch_reference.py if that is intended)");
                float[][][] ours = OurPeftAdapters.logits(model, loaded);
                assertClose(ours, expected, name + ": committed adapter");
                assertClose(ours, readLogits(committed.resolve("reference_logits.json")),
                        name + ": ptune vs the float64 torch reference");
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
                assertClose(OurPeftAdapters.logits(model, loaded), readLogits(peftLogits),
                        name + ": ptune vs PEFT on ptune's adapter");
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
                assertClose(OurPeftAdapters.logits(model, loaded), readLogits(caseDir.resolve("expected_logits.json")),
                        name + ": ptune vs PEFT");
            }
        }));
    }
}
