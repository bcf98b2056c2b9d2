package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.internal.JsonFiles;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The real BERT-family sentence encoders of langchain4j's Maven Central jars (all-MiniLM-L6-v2,
 * bge-small-en-v1.5, bge-small-zh-v1.5), read by ptune from their ONNX initializers and computed by
 * its own BERT, against ONNX Runtime running the same graph (the independent reference; tests only).
 */
class OnnxEncodersTest {
    /** Architectures read from the graphs (bge-small-zh-v1.5 is the 4-layer, 512-wide one). */
    private static final Map<String, int[]> DIMS = Map.of(
            "all-minilm-l6-v2", new int[] {30522, 384, 6, 12, 1536},
            "bge-small-en-v15", new int[] {30522, 384, 12, 12, 1536},
            "bge-small-zh-v15", new int[] {21128, 512, 4, 8, 2048});
    /** Must match TEXTS in tests-java/peft/onnx_tokenizers.py, which recorded transformers' ids. */
    private static final List<String> TEXTS = List.of(
            "The quick brown fox jumps over the lazy dog.",
            "Prompt tuning keeps the model frozen and learns a few vectors.",
            "这家酒店的服务非常好，房间也很干净。",
            "I loved it 😀 — 非常好!");

    @TestFactory
    Stream<DynamicTest> lastHiddenStateMatchesOnnxRuntime() {
        return DIMS.keySet().stream().sorted().map(name -> DynamicTest.dynamicTest(name, () -> {
            Path onnx = TestPaths.onnxModel(name);
            JsonNode reference = JsonFiles.MAPPER.readTree(
                    TestPaths.root().resolve("tests-java/resources/onnx/tokenizer_ids.json").toFile());
            try (Model model = Model.load(onnx);
                    OrtEnvironment env = OrtEnvironment.getEnvironment();
                    OrtSession session = env.createSession(onnx.toString(), new OrtSession.SessionOptions())) {
                Architecture arch = model.architecture();
                int[] want = DIMS.get(name);
                assertArrayEquals(want, new int[] {arch.vocabSize(), arch.hiddenSize(), arch.numLayers(), arch.numHeads(),
                        ((BertArchitecture) arch).intermediateSize()}, name + ": architecture read from the graph");
                assertFalse(arch.causal());
                double worst = 0;
                for (int k = 0; k < TEXTS.size(); k++) {
                    String text = TEXTS.get(k);
                    assertEquals(text, reference.get("texts").get(k).asText());
                    long[] ids = model.tokenizer().encode(text, true);
                    // transformers' ids with the jar's tokenizer.json ([CLS] ... [SEP] included).
                    JsonNode wantIds = reference.get("ids").get(name).get(k);
                    long[] expected = new long[wantIds.size()];
                    for (int t = 0; t < expected.length; t++) {
                        expected[t] = wantIds.get(t).asLong();
                    }
                    assertArrayEquals(expected, ids, name + ": ids of '" + text + "'");
                    float[][] ours = model.hiddenStates(null, ids, null);
                    float[][] theirs = run(env, session, ids);
                    double diff = Tolerances.maxDiff(theirs, ours), largest = Tolerances.maxAbs(theirs);
                    worst = Math.max(worst, diff);
                    // Two fp32 implementations of one network (ONNX Runtime's kernels and ours) round
                    // differently: within fp32 rounding of the values' magnitude (Tolerances).
                    assertTrue(diff <= Tolerances.fp32(largest),
                            name + " '" + text + "': max difference " + diff + " (values up to " + largest + ")");
                }
                System.out.printf("%s: max |ptune - ONNX Runtime| over %d sentences = %.2e%n", name, TEXTS.size(), worst);
            }
        }));
    }

    /** last_hidden_state (T, C) from ONNX Runtime for one unpadded sequence. */
    private static float[][] run(OrtEnvironment env, OrtSession session, long[] ids) throws Exception {
        long[] shape = {1, ids.length};
        long[] mask = new long[ids.length];
        Arrays.fill(mask, 1);
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape);
                OnnxTensor attention = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape);
                OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(new long[ids.length]), shape);
                OrtSession.Result result = session.run(Map.of("input_ids", inputIds, "attention_mask", attention,
                        "token_type_ids", types))) {
            float[][][] out = (float[][][]) result.get(0).getValue();
            return out[0];
        }
    }
}
