package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.MetricsWriter;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's Java examples, verbatim apart from paths, so the README stays true. */
class ReadmeExampleTest {
    @TempDir
    Path dir;

    /** "The same in Java" (the quick start): the demo's training, on the shipped files. */
    @Test
    void quickStartJavaExampleRuns() {
        Path root = TestPaths.root();
        Path adapterDir = dir.resolve("my-adapter");
        String text;
        try (Model model = Model.load(root.resolve("examples/stories260k"));
                Trainer trainer = Trainer.create(model,
                        PromptTuningConfig.builder().numVirtualTokens(16).init(PromptInit.SAMPLE_VOCAB).seed(7).build(),
                        TrainingConfig.builder().learningRate(0.3).epochs(30).seed(7).build(),
                        AlpacaDataset.load(root.resolve("examples/data/max_the_dog.json")))) {
            trainer.train();
            PromptAdapter.save(trainer.prompt(), adapterDir);                   // PEFT's layout
            Generator generator = new Generator(model, trainer.prompt(), GenerationConfig.builder().maxNewTokens(48).build());
            text = generator.generate("Human: Tell me a story.\n\nAssistant: ").text();
        }
        assertTrue(Files.exists(adapterDir.resolve("adapter_model.safetensors")));
        assertTrue(text.contains("Max"), "the story is about Max after training: " + text);
    }

    @Test
    void readmeJavaExampleRuns() throws Exception {
        Path alpaca = dir.resolve("alpaca.json");
        Files.writeString(alpaca, "[{\"instruction\":\"Tell me a story.\",\"input\":\"\","
                + "\"output\":\"Once upon a time, there was a little dog named Max.\"}]");
        Path adapterDir = dir.resolve("my-adapter");
        Path metricsFile = dir.resolve("metrics.jsonl");
        Generation generation;
        try (Model model = Model.load(TestPaths.stories260k())) {
            PromptTuningConfig prompt = PromptTuningConfig.builder()
                    .numVirtualTokens(20)
                    .init(PromptInit.TEXT).initText("Answer the question:")
                    .build();
            TrainingConfig training = TrainingConfig.builder().learningRate(1e-2).epochs(3).build();
            AlpacaDataset data = AlpacaDataset.load(alpaca);
            try (Trainer trainer = Trainer.create(model, prompt, training, data);
                    MetricsWriter metrics = new MetricsWriter(metricsFile)) {
                trainer.addListener(metrics);
                trainer.train();
                PromptAdapter.save(trainer.prompt(), adapterDir);
            }
            try (PromptModule trained = PromptAdapter.load(adapterDir, model)) {
                Generator generator = new Generator(model, trained, GenerationConfig.builder().maxNewTokens(64).build());
                generation = generator.generate("Human: Tell me a story.\n\nAssistant: ");
            }
        }
        assertEquals(3, Files.readAllLines(metricsFile).size(), "one metrics line per optimizer step");
        assertTrue(Files.exists(adapterDir.resolve("adapter_model.safetensors")));
        assertFalse(generation.text().isBlank());
    }
}
