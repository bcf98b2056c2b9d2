package io.ptune.classify;

import io.ptune.model.Model;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptTuningConfig;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The SEQ_CLS classifiers ptune writes (a prompt + a linear head, 3 labels) for BERT (with pooler),
 * GPT-2 and Llama, committed under {@code tests-java/resources/classification/ours/<case>/<method>/}
 * so that {@code tests-java/peft/classification_ours.py} can load them into transformers'
 * {@code *ForSequenceClassification} with Python PEFT and record its logits
 * ({@code peft_outputs.safetensors}), which {@code ClassifierPeftInteropTest} compares with ptune's on
 * every build. Deterministic: seeded native initialisation, then seeded Java values for the head
 * (the default N(0, 0.02) head would give near-zero logits).
 *
 * <pre>
 *   mvn -q -o test-compile && java -cp "target/test-classes:target/classes:target/lib/*" \
 *       io.ptune.classify.OurClassifiers
 * </pre>
 */
public final class OurClassifiers {
    /** Case -> base model, relative to the repository (what adapter_config.json records). */
    public static final Map<String, String> CASES = Map.of(
            "bert", "tests-java/resources/families/bert_base/model",
            "gpt2", "tests-java/resources/families/gpt2/model",
            "llama", "tests-java/resources/peft/tiny-llama");
    public static final List<String> LABELS = List.of("negative", "neutral", "positive");

    private OurClassifiers() {}

    /** Method name -> the config that creates it. */
    public static Map<String, PromptMethodConfig> methods() {
        Map<String, PromptMethodConfig> methods = new LinkedHashMap<>();
        methods.put("prompt_tuning", PromptTuningConfig.builder().numVirtualTokens(3).seed(21).build());
        methods.put("p_tuning", PTuningConfig.builder().numVirtualTokens(3).encoderHiddenSize(16).seed(22).build());
        methods.put("prefix", PrefixTuningConfig.builder().numVirtualTokens(2).seed(23).build());
        methods.put("prefix_projection", PrefixTuningConfig.builder().numVirtualTokens(2).prefixProjection(true)
                .encoderHiddenSize(24).seed(24).build());
        return methods;
    }

    public static void main(String[] args) {
        Path repo = Path.of(args.length > 0 ? args[0] : ".");
        Path root = repo.resolve("tests-java/resources/classification/ours");
        for (var entry : CASES.entrySet()) {
            try (Model model = Model.load(repo.resolve(entry.getValue()))) {
                for (var method : methods().entrySet()) {
                    try (PromptClassifier classifier = PromptClassifier.create(model, method.getValue(),
                            ClassificationConfig.builder().seed(25).build(), LABELS, 64)) {
                        Random random = new Random(entry.getKey().hashCode() * 31L + method.getKey().hashCode());
                        if (method.getKey().equals("prompt_tuning")) {
                            // N(0, 1) virtual tokens would swamp a tiny model's embeddings.
                            float[] values = classifier.prompt().read("embedding");
                            for (int i = 0; i < values.length; i++) {
                                values[i] = 0.3f * (float) random.nextGaussian();
                            }
                            classifier.prompt().write("embedding", values);
                        }
                        for (String name : classifier.headParameterNames()) {
                            float[] values = classifier.readHead(name);
                            for (int i = 0; i < values.length; i++) {
                                values[i] = 0.25f * (float) random.nextGaussian();
                            }
                            classifier.writeHead(name, values);
                        }
                        classifier.save(root.resolve(entry.getKey()).resolve(method.getKey()), entry.getValue());
                    }
                }
            }
        }
        System.out.println("wrote " + root + "/<case>/<method>/");
    }
}
