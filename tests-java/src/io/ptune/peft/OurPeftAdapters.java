package io.ptune.peft;

import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.adapter.PromptAdapter;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The adapters ptune writes for the tiny GQA Llama of {@code tests-java/resources/peft/tiny-llama},
 * one per case, with the logits ptune computes for fixed inputs ({@code expected_logits.json}).
 * They are committed under {@code tests-java/resources/peft/ours/<case>/}, so that
 * {@code tests-java/peft/peft_compare.py} can load them with Python PEFT where it is installed,
 * and {@code tests-java/peft/torch_reference.py} can check them against an independent forward.
 * {@code PeftInteropTest} regenerates them and checks that nothing drifted.
 *
 * <p>Every value is deterministic: seeded native initialisation plus seeded Java perturbations
 * (so that the dynamic generator and the stage-2 layer are not at their starting values).
 *
 * <pre>
 *   mvn -q -o test-compile && java -cp "target/test-classes:target/classes:target/lib/*" \
 *       io.ptune.peft.OurPeftAdapters tests-java/resources/peft
 * </pre>
 */
public final class OurPeftAdapters {
    /** The fixed inputs every comparison uses (no padding; ids used as given). */
    public static final List<long[]> INPUTS = List.of(new long[] {1, 45, 300, 7, 99}, new long[] {1, 260, 12});

    /** Case name -> the config that creates it. */
    public static Map<String, PromptMethodConfig> cases() {
        Map<String, PromptMethodConfig> cases = new LinkedHashMap<>();
        cases.put("prompt_tuning", PromptTuningConfig.builder().numVirtualTokens(3).seed(1).build());
        cases.put("p_tuning_mlp", PTuningConfig.builder().numVirtualTokens(3).encoderHiddenSize(32).seed(2).build());
        cases.put("p_tuning_lstm", PTuningConfig.builder().numVirtualTokens(3).encoderType(PromptEncoderType.LSTM)
                .encoderHiddenSize(16).encoderNumLayers(2).seed(3).build());
        cases.put("prefix", PrefixTuningConfig.builder().numVirtualTokens(3).seed(4).build());
        cases.put("prefix_projection", PrefixTuningConfig.builder().numVirtualTokens(3).prefixProjection(true)
                .encoderHiddenSize(24).seed(5).build());
        cases.put("composite", CompositePromptConfig.builder().addBlock("base", 2, PromptInitSpec.random())
                .addBlock("task", 1, PromptInitSpec.text("Once")).seed(6).build());
        cases.put("dynamic", DynamicPromptConfig.builder().numVirtualTokens(3).generatorHiddenSize(16).seed(7).build());
        cases.put("two_stage", PromptTuningConfig.builder().numVirtualTokens(3).seed(8).build());
        return cases;
    }

    private OurPeftAdapters() {}

    /** Creates case {@code name} on {@code model} (the caller closes it). */
    public static PromptModule create(Model model, String name) {
        PromptModule module = PromptModule.create(model, cases().get(name));
        Random random = new Random(name.hashCode());
        if (name.equals("dynamic")) {
            // g's last layer starts at zero (a static prompt); move it so the prompt depends on the input.
            for (String p : List.of("generator.2.weight", "generator.2.bias")) {
                module.write(p, scaled(random, module.read(p).length, 0.3f));
            }
        }
        if (name.equals("two_stage")) {
            module.unfreezeTopLayers(1, 1e-5);
            for (String p : module.layerParameterNames()) {
                float[] values = module.read(p);
                for (int i = 0; i < values.length; i++) {
                    values[i] += 0.05f * (float) random.nextGaussian();
                }
                module.write(p, values);
            }
        }
        return module;
    }

    private static float[] scaled(Random random, int n, float scale) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = scale * (float) random.nextGaussian();
        }
        return values;
    }

    /** Logits of every input behind {@code prompt}: [input][row][vocab]. */
    public static float[][][] logits(Model model, PromptModule prompt) {
        float[][][] out = new float[INPUTS.size()][][];
        for (int i = 0; i < INPUTS.size(); i++) {
            out[i] = model.logits(prompt, INPUTS.get(i));
        }
        return out;
    }

    /** Writes {@code <root>/ours/<case>/} (adapter + expected_logits.json) for every case. */
    public static void writeAll(Model model, Path root) throws IOException {
        for (String name : cases().keySet()) {
            Path dir = root.resolve("ours").resolve(name);
            try (PromptModule module = create(model, name)) {
                PromptAdapter.save(module, dir, "tiny-llama");
                writeLogits(dir.resolve("expected_logits.json"), module.inputVirtualTokens(), logits(model, module),
                        "ptune (Java + libtorch), " + name);
            }
        }
    }

    /** {"source", "inputs", "virtual_tokens", "logits": [input][row][vocab]}. */
    public static void writeLogits(Path file, int virtualTokens, float[][][] logits, String source) throws IOException {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("source", source);
        ArrayNode inputs = json.putArray("inputs");
        for (long[] ids : INPUTS) {
            ArrayNode row = inputs.addArray();
            for (long id : ids) {
                row.add(id);
            }
        }
        json.put("virtual_tokens", virtualTokens);
        ArrayNode all = json.putArray("logits");
        for (float[][] input : logits) {
            ArrayNode rows = all.addArray();
            for (float[] row : input) {
                ArrayNode values = rows.addArray();
                for (float v : row) {
                    values.add(v);
                }
            }
        }
        Files.writeString(file, JsonFiles.MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT)
                .writeValueAsString(json) + "\n");
    }

    public static void main(String[] args) throws IOException {
        Path root = Path.of(args.length > 0 ? args[0] : "tests-java/resources/peft");
        try (Model model = Model.load(root.resolve("tiny-llama"))) {
            writeAll(model, root);
        }
        System.out.println("wrote " + root.resolve("ours"));
    }
}
