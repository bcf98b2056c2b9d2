package io.ptune.serve;

import io.ptune.TestMethods;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.PromptClassifier;
import io.ptune.data.AlpacaDataset;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Adapters of several methods on stories260K, trained for a few steps and saved, for the serve tests. */
final class ServeFixtures {
    /** Test method names (TestMethods) of the adapters the tests serve. */
    static final List<String> METHODS = List.of("prompt-tuning", "p-tuning-mlp", "prefix", "prefix-projection",
            "dynamic", "composite");

    private ServeFixtures() {}

    /**
     * Trains each method a few steps on Alpaca examples and saves it under dir/NAME. Returns
     * name -> folder, in METHODS order.
     */
    static Map<String, Path> trainAdapters(Model model, Path dir, List<String> methods) {
        AlpacaDataset data = AlpacaDataset.load(TestPaths.alpacaEn()).slice(0, 16);
        TrainingConfig config = TrainingConfig.builder().maxSteps(3).batchSize(8).maxLength(48).learningRate(0.05)
                .build();
        Map<String, Path> out = new LinkedHashMap<>();
        for (String method : methods) {
            Path adapter = dir.resolve(method);
            try (Trainer trainer = Trainer.create(model, TestMethods.get(method), config, data)) {
                trainer.train();
                PromptModule trained = trainer.prompt();
                perturbDynamicGenerator(trained);
                PromptAdapter.save(trained, adapter);
            }
            out.put(method, adapter);
        }
        return out;
    }

    /** A linear-head classifier (prompt tuning in front), untrained but seeded, saved under dir. */
    static Path classifier(Model model, Path dir) {
        try (PromptClassifier c = PromptClassifier.create(model,
                PromptTuningConfig.builder().numVirtualTokens(3).seed(9).build(),
                ClassificationConfig.builder().seed(4).build(), List.of("happy", "sad"), 64)) {
            c.save(dir);
        }
        return dir;
    }

    /** A dynamic prompt's generator starts static (its last layer at zero): make it read the input. */
    private static void perturbDynamicGenerator(PromptModule module) {
        if (!module.parameterNames().contains("generator.2.weight")) {
            return;
        }
        Random random = new Random(5);
        for (String name : List.of("generator.2.weight", "generator.2.bias")) {
            float[] values = module.read(name);
            for (int i = 0; i < values.length; i++) {
                values[i] = 0.2f * (float) random.nextGaussian();
            }
            module.write(name, values);
        }
    }
}
