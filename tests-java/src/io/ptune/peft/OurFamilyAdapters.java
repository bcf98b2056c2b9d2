package io.ptune.peft;

import io.ptune.adapter.PromptAdapter;
import io.ptune.model.Model;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The adapters ptune writes for the GPT-2, BLOOM and BERT models of
 * {@code tests-java/resources/families/<case>/model}, one per prompt method PEFT also has, committed
 * under {@code <case>/ours/<method>/} so that {@code tests-java/peft/families_ours.py} can load them
 * with Python PEFT and record PEFT's outputs ({@code peft_outputs.safetensors}), which
 * {@code FamilyPeftInteropTest} compares with ptune's on every build. Values are deterministic:
 * seeded native initialisation plus a seeded Java rescale, so the prompts move the outputs.
 *
 * <pre>
 *   mvn -q -o test-compile && java -cp "target/test-classes:target/classes:target/lib/*" \
 *       io.ptune.peft.OurFamilyAdapters tests-java/resources/families
 * </pre>
 */
public final class OurFamilyAdapters {
    public static final List<String> CASES = List.of("gpt2", "bloom", "bloom_pow2", "bert", "bert_base");

    private OurFamilyAdapters() {}

    /** Method name -> the config that creates it. */
    public static Map<String, PromptMethodConfig> methods() {
        Map<String, PromptMethodConfig> methods = new LinkedHashMap<>();
        methods.put("prompt_tuning", PromptTuningConfig.builder().numVirtualTokens(3).seed(11).build());
        methods.put("p_tuning", PTuningConfig.builder().numVirtualTokens(3).encoderHiddenSize(16).seed(12).build());
        methods.put("prefix", PrefixTuningConfig.builder().numVirtualTokens(2).seed(13).build());
        methods.put("prefix_projection", PrefixTuningConfig.builder().numVirtualTokens(2).prefixProjection(true)
                .encoderHiddenSize(24).seed(14).build());
        return methods;
    }

    /** Creates {@code method} on {@code model} (the caller closes it). */
    public static PromptModule create(Model model, String method) {
        PromptModule module = PromptModule.create(model, methods().get(method));
        // Rescale the input prompts to the embeddings' scale (N(0, 1) would swamp a tiny model).
        if (method.equals("prompt_tuning")) {
            float[] values = module.read("embedding");
            Random random = new Random(method.hashCode());
            for (int i = 0; i < values.length; i++) {
                values[i] = 0.3f * (float) random.nextGaussian();
            }
            module.write("embedding", values);
        }
        return module;
    }

    public static void main(String[] args) throws IOException {
        Path root = Path.of(args.length > 0 ? args[0] : "tests-java/resources/families");
        for (String name : CASES) {
            try (Model model = Model.load(root.resolve(name).resolve("model"))) {
                for (String method : methods().keySet()) {
                    try (PromptModule module = create(model, method)) {
                        PromptAdapter.save(module, root.resolve(name).resolve("ours").resolve(method),
                                "tests-java/resources/families/" + name + "/model");
                    }
                }
            }
        }
        System.out.println("wrote " + root + "/<case>/ours/");
    }
}
