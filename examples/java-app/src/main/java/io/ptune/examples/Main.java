package io.ptune.examples;

import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSummary;
import java.nio.file.Path;

/**
 * Prompt-tunes a frozen model on Alpaca-style data, saves the adapter (PEFT's layout), and
 * generates before and after. Usage: Main MODEL_DIR DATA_FILE ADAPTER_OUT_DIR
 */
public final class Main {
    public static void main(String[] args) {
        Path modelDir = Path.of(args[0]), data = Path.of(args[1]), adapterDir = Path.of(args[2]);
        String request = "Human: Tell me a story.\n\nAssistant: ";
        GenerationConfig greedy = GenerationConfig.builder().maxNewTokens(48).greedy(true).build();
        try (Model model = Model.load(modelDir)) {
            System.out.println("before: " + oneLine(new Generator(model, null, greedy).generate(request).text()));
            PromptTuningConfig prompt = PromptTuningConfig.builder()
                    .numVirtualTokens(16).init(PromptInit.SAMPLE_VOCAB).seed(7).build();
            TrainingConfig training = TrainingConfig.builder()
                    .learningRate(0.3).epochs(30).batchSize(8).seed(7).build();
            try (Trainer trainer = Trainer.create(model, prompt, training, AlpacaDataset.load(data))) {
                TrainingSummary summary = trainer.train();
                System.out.printf("trained %d steps, %d parameters, loss %.4f -> %.4f%n", summary.steps(),
                        trainer.prompt().trainableParameterCount(), summary.firstLoss(), summary.lastLoss());
                PromptAdapter.save(trainer.prompt(), adapterDir);
            }
            try (PromptModule trained = PromptAdapter.load(adapterDir, model)) {
                System.out.println("after: " + oneLine(new Generator(model, trained, greedy).generate(request).text()));
            }
        }
    }

    private static String oneLine(String text) {
        return text.strip().replace('\n', ' ');
    }
}
