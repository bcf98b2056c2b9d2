package io.ptune.cli;

import io.ptune.adapter.PeftAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.model.CausalLm;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.LrSchedule;
import io.ptune.train.MetricsWriter;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSummary;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code ptune train}: trains a soft prompt and writes it as a PEFT adapter. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a soft prompt on an Alpaca-style dataset; write a PEFT adapter.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class TrainCommand extends CliCommand {
    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "Hugging Face model directory (config.json, tokenizer.json, model.safetensors).")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "FILE",
            description = "Alpaca data: JSON array or JSON Lines of {instruction, input, output}.")
    Path data;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Where to write the adapter (adapter_config.json, adapter_model.safetensors).")
    Path out;

    @Option(names = "--virtual-tokens", paramLabel = "N", defaultValue = "20",
            description = "Number of virtual tokens (default: ${DEFAULT-VALUE}).")
    int virtualTokens;

    @Option(names = "--init", paramLabel = "SPEC", defaultValue = "random",
            description = "random | vocab | text:\"...\" | labels:word1,word2 (default: ${DEFAULT-VALUE}).")
    String init;

    @Option(names = "--lr", paramLabel = "X", description = "Peak learning rate (default: 1e-2).")
    Double learningRate;

    @Option(names = "--epochs", paramLabel = "N", description = "Passes over the data (default: 1).")
    Integer epochs;

    @Option(names = "--max-steps", paramLabel = "N",
            description = "Train exactly N optimizer steps instead of whole epochs.")
    Long maxSteps;

    @Option(names = "--batch-size", paramLabel = "N", description = "Examples per micro-batch (default: 8).")
    Integer batchSize;

    @Option(names = "--grad-accum", paramLabel = "N",
            description = "Micro-batches per optimizer step (default: 1).")
    Integer gradAccum;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Longest tokenised example; longer ones are cut at the end (default: 256).")
    Integer maxLength;

    @Option(names = "--seed", paramLabel = "N", description = "Seed for prompt init and shuffling (default: 42).")
    Long seed;

    @Option(names = "--warmup-steps", paramLabel = "N", description = "Linear warm-up steps (default: 0).")
    Long warmupSteps;

    @Option(names = "--schedule", paramLabel = "KIND",
            description = "constant | linear | cosine (default: linear).")
    String schedule;

    @Option(names = "--weight-decay", paramLabel = "X", description = "AdamW weight decay (default: 0).")
    Double weightDecay;

    @Option(names = "--max-grad-norm", paramLabel = "X", description = "Gradient clipping norm (default: 1.0).")
    Double maxGradNorm;

    @Option(names = "--log-every", paramLabel = "N",
            description = "Log a progress line every N optimizer steps (default: 10).")
    int logEvery = 10;

    @Option(names = "--metrics-out", paramLabel = "FILE",
            description = "Write one JSON line per optimizer step: step, loss, lr, tokens_per_s.")
    Path metricsOut;

    @Override
    protected Map<String, String> flagNames() {
        return Map.ofEntries(
                Map.entry("numVirtualTokens", "--virtual-tokens"),
                Map.entry("initText", "--init"),
                Map.entry("labelWords", "--init"),
                Map.entry("learningRate", "--lr"),
                Map.entry("epochs", "--epochs"),
                Map.entry("maxSteps", "--max-steps"),
                Map.entry("batchSize", "--batch-size"),
                Map.entry("gradAccum", "--grad-accum"),
                Map.entry("maxLength", "--max-length"),
                Map.entry("warmupSteps", "--warmup-steps"),
                Map.entry("weightDecay", "--weight-decay"),
                Map.entry("logEvery", "--log-every"),
                Map.entry("maxGradNorm", "--max-grad-norm"));
    }

    @Override
    protected int run() {
        // Validate every flag before the model is loaded, so typos fail fast.
        PromptTuningConfig promptConfig = promptConfig();
        TrainingConfig trainingConfig = trainingConfig();
        AlpacaDataset dataset = AlpacaDataset.load(data);

        try (CausalLm lm = CausalLm.load(model);
                Trainer trainer = Trainer.create(lm, promptConfig, trainingConfig, dataset);
                MetricsWriter metrics = metricsOut == null ? null : new MetricsWriter(metricsOut)) {
            if (metrics != null) {
                trainer.addListener(metrics);
            }
            TrainingSummary summary = trainer.train();
            PeftAdapter.of(trainer.trainedPrompt(), promptConfig, model).save(out, lm.architecture());
            out().printf(Locale.ROOT, "trained %d steps, loss %.4f -> %.4f, %.0f tokens/s; adapter written to %s%n",
                    summary.steps(), summary.firstLoss(), summary.lastLoss(), summary.tokensPerSecond(), out);
            out().flush();
        }
        return 0;
    }

    private PromptTuningConfig promptConfig() {
        PromptTuningConfig.Builder builder = PromptTuningConfig.builder().numVirtualTokens(virtualTokens);
        if (seed != null) {
            builder.seed(seed);
        }
        String spec = init.trim();
        String lower = spec.toLowerCase(Locale.ROOT);
        if (lower.equals("random")) {
            builder.init(PromptInit.RANDOM);
        } else if (lower.equals("vocab") || lower.equals("sample_vocab")) {
            builder.init(PromptInit.SAMPLE_VOCAB);
        } else if (lower.startsWith("text:")) {
            builder.initText(stripQuotes(spec.substring("text:".length())));
        } else if (lower.startsWith("labels:")) {
            List<String> words = Arrays.stream(spec.substring("labels:".length()).split(","))
                    .map(String::trim).toList();
            builder.labelWords(words);
        } else {
            throw new IllegalArgumentException("--init '" + init + "' is not one of random, vocab,"
                    + " text:\"...\", labels:word1,word2");
        }
        return builder.build();
    }

    private TrainingConfig trainingConfig() {
        TrainingConfig.Builder builder = TrainingConfig.builder();
        if (learningRate != null) {
            builder.learningRate(learningRate);
        }
        if (epochs != null) {
            builder.epochs(epochs);
        }
        if (maxSteps != null) {
            builder.maxSteps(maxSteps);
        }
        if (batchSize != null) {
            builder.batchSize(batchSize);
        }
        if (gradAccum != null) {
            builder.gradAccum(gradAccum);
        }
        if (maxLength != null) {
            builder.maxLength(maxLength);
        }
        if (seed != null) {
            builder.seed(seed);
        }
        if (warmupSteps != null) {
            builder.warmupSteps(warmupSteps);
        }
        if (schedule != null) {
            try {
                builder.schedule(LrSchedule.valueOf(schedule.trim().toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--schedule '" + schedule
                        + "' is not one of constant, linear, cosine");
            }
        }
        if (weightDecay != null) {
            builder.weightDecay(weightDecay);
        }
        if (maxGradNorm != null) {
            builder.maxGradNorm(maxGradNorm);
        }
        return builder.logEvery(logEvery).build();
    }

    private static String stripQuotes(String text) {
        String trimmed = text.strip();
        if (trimmed.length() >= 2 && (trimmed.startsWith("\"") && trimmed.endsWith("\"")
                || trimmed.startsWith("'") && trimmed.endsWith("'"))) {
            return trimmed.substring(1, trimmed.length() - 1);
        }
        return text;
    }
}
