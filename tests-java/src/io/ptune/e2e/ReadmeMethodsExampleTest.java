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
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TwoStageConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's "Every prompt method" example, verbatim apart from paths, so the README stays true. */
class ReadmeMethodsExampleTest {
    @TempDir
    Path dir;

    @Test
    void readmeMethodsExampleRuns() throws Exception {
        Path alpaca = dir.resolve("alpaca.json");
        Files.writeString(alpaca, "[{\"instruction\":\"Tell me a story.\",\"input\":\"\","
                + "\"output\":\"Once upon a time, there was a little dog named Max.\"}]");
        Path adapterDir = dir.resolve("my-adapter");
        Generation generation;
        try (Model model = Model.load(TestPaths.stories260k())) {
            PromptMethodConfig method = PTuningConfig.builder()
                    .numVirtualTokens(20)
                    .encoderType(PromptEncoderType.LSTM)
                    .initText("Answer the question:")
                    .build();
            TrainingConfig training = TrainingConfig.builder().learningRate(1e-2).epochs(3)
                    .twoStage(TwoStageConfig.builder().layers(2).steps(10).build())
                    .build();
            AlpacaDataset data = AlpacaDataset.load(alpaca);
            try (Trainer trainer = Trainer.create(model, method, training, data)) {
                trainer.train();
                PromptAdapter.save(trainer.prompt(), adapterDir);
            }
            try (PromptModule prompt = PromptAdapter.load(adapterDir, model)) {
                Generator generator = new Generator(model, prompt, GenerationConfig.builder().maxNewTokens(64).build());
                generation = generator.generate("Human: Tell me a story.\n\nAssistant: ");
                assertEquals(2, prompt.unfrozenLayers());
            }
        }
        assertTrue(Files.exists(adapterDir.resolve(PromptAdapter.P_TUNING_ENCODER_FILE)));
        assertTrue(Files.exists(adapterDir.resolve(PromptAdapter.LAYERS_FILE)));
        assertFalse(generation.text().isBlank());
    }
}
