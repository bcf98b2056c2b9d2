package io.ptune.bench;

import io.ptune.data.AlpacaDataset;
import io.ptune.model.Model;
import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.LrSchedule;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSummary;
import io.ptune.train.TwoStageConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Held-out loss per prompt-learning method on one real task: every method trains the same number
 * of optimizer steps on the same slice of alpaca_en in front of the frozen stories260K model, and
 * is evaluated on held-out rows before and after. Writes a Markdown table (bench/METHODS.md via
 * bench/methods.sh). Not a JUnit test: run it with {@code bench/methods.sh}.
 *
 * <pre>
 *   java -cp "target/test-classes:target/classes:target/lib/*" io.ptune.bench.MethodsBench \
 *       MODEL_DIR ALPACA_JSON OUT.md [steps]
 * </pre>
 */
public final class MethodsBench {
    private static final int TRAIN_ROWS = 512;
    private static final int HELD_OUT_ROWS = 128;
    private static final int MAX_LENGTH = 128;
    private static final int BATCH = 8;
    private static final int VIRTUAL = 20;
    private static final double LR = 0.03;

    private record Entry(String name, String settings, PromptMethodConfig config, TwoStageConfig twoStage) {}

    private record Row(Entry entry, long trainable, double before, double after, double stepMs, double tokensPerS) {}

    private MethodsBench() {}

    private static List<Entry> entries(int steps) {
        int stage1 = steps * 2 / 3;
        return List.of(
                new Entry("prompt tuning", "n=20, init random",
                        PromptTuningConfig.builder().numVirtualTokens(VIRTUAL).build(), null),
                new Entry("P-tuning (MLP)", "n=20, h=64",
                        PTuningConfig.builder().numVirtualTokens(VIRTUAL).build(), null),
                new Entry("P-tuning (LSTM)", "n=20, h=64, 2 layers",
                        PTuningConfig.builder().numVirtualTokens(VIRTUAL).encoderType(PromptEncoderType.LSTM).build(), null),
                new Entry("prefix tuning", "n=20 per layer, token_dim 32 (GQA)",
                        PrefixTuningConfig.builder().numVirtualTokens(VIRTUAL).build(), null),
                new Entry("prefix + projection", "n=20, h=32 (= token_dim)",
                        PrefixTuningConfig.builder().numVirtualTokens(VIRTUAL).prefixProjection(true).build(), null),
                new Entry("composite", "base 10 (text init) + task 10 (random)",
                        CompositePromptConfig.builder()
                                .addBlock("base", 10, PromptInitSpec.text("Below is an instruction. Write a response."))
                                .addBlock("task", 10, PromptInitSpec.random()).build(), null),
                new Entry("dynamic", "n=20, generator h=64",
                        DynamicPromptConfig.builder().numVirtualTokens(VIRTUAL).build(), null),
                new Entry("two-stage (prompt tuning)", "n=20; " + stage1 + " steps prompt, then " + (steps - stage1)
                        + " steps + top 2 layers at 1e-4",
                        PromptTuningConfig.builder().numVirtualTokens(VIRTUAL).build(),
                        TwoStageConfig.builder().layers(2).learningRate(1e-4).steps(steps - stage1).build()));
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 3) {
            System.err.println("usage: MethodsBench MODEL_DIR ALPACA_JSON OUT.md [steps]");
            System.exit(2);
        }
        Path modelDir = Path.of(args[0]);
        AlpacaDataset all = AlpacaDataset.load(Path.of(args[1]));
        Path out = Path.of(args[2]);
        int steps = args.length > 3 ? Integer.parseInt(args[3]) : 120;
        AlpacaDataset train = all.slice(0, TRAIN_ROWS);
        AlpacaDataset heldOut = all.slice(TRAIN_ROWS, TRAIN_ROWS + HELD_OUT_ROWS);
        List<Row> rows = new ArrayList<>();
        long start = System.nanoTime();
        try (Model model = Model.load(modelDir)) {
            for (Entry entry : entries(steps)) {
                TwoStageConfig twoStage = entry.twoStage();
                long stage1 = twoStage == null ? steps : steps - twoStage.steps();
                TrainingConfig config = TrainingConfig.builder().maxSteps(stage1).batchSize(BATCH).maxLength(MAX_LENGTH)
                        .learningRate(LR).warmupSteps(10).schedule(LrSchedule.LINEAR).seed(1).logEvery(50)
                        .twoStage(twoStage).build();
                try (Trainer trainer = Trainer.create(model, entry.config(), config, train)) {
                    double before = trainer.evaluate(heldOut);
                    TrainingSummary summary = trainer.train();
                    double after = trainer.evaluate(heldOut);
                    Row row = new Row(entry, trainer.prompt().trainableParameterCount(), before, after,
                            summary.elapsed().toNanos() / 1e6 / summary.steps(), summary.tokensPerSecond());
                    rows.add(row);
                    System.out.printf(Locale.ROOT, "%-26s %9d params  held-out %.4f -> %.4f  %.1f ms/step%n",
                            entry.name(), row.trainable(), before, after, row.stepMs());
                }
            }
        }
        double minutes = (System.nanoTime() - start) / 6e10;
        Files.writeString(out, markdown(rows, steps, minutes));
        System.out.println("wrote " + out);
    }

    private static String markdown(List<Row> rows, int steps, double minutes) {
        StringBuilder md = new StringBuilder();
        md.append("# Held-out loss per prompt-learning method\n\n");
        md.append(String.format(Locale.ROOT, "Generated by `bench/methods.sh` on %s (%d CPU cores, %s %s; %.1f min"
                + " in all). Frozen model: stories260K (Llama, 5 layers, hidden 64, GQA 8/4 heads, vocab 512)."
                + " Task: alpaca_en rows 0-%d for training, rows %d-%d held out; Alpaca chat template, answer"
                + " tokens only, max length %d. Every method: %d optimizer steps, batch %d, AdamW, peak lr %s"
                + " (linear decay, 10 warm-up steps), same data order (seed 1). Held-out loss: mean cross-entropy"
                + " per answer token. Step time: wall time of the training loop / steps (forward, backward,"
                + " AdamW; one JNI call per micro-batch).%n%n",
                LocalDate.now(), Runtime.getRuntime().availableProcessors(), System.getProperty("os.name"),
                System.getProperty("os.arch"), minutes, TRAIN_ROWS - 1, TRAIN_ROWS, TRAIN_ROWS + HELD_OUT_ROWS - 1,
                MAX_LENGTH, steps, BATCH, LR));
        md.append("| method | settings | trainable parameters | held-out loss before | held-out loss after | change |"
                + " step time (ms) | tokens/s |\n");
        md.append("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for (Row row : rows) {
            md.append(String.format(Locale.ROOT, "| %s | %s | %,d | %.4f | %.4f | %+.4f | %.1f | %.0f |%n",
                    row.entry().name(), row.entry().settings(), row.trainable(), row.before(), row.after(),
                    row.after() - row.before(), row.stepMs(), row.tokensPerS()));
        }
        md.append("\nNotes: trainable parameters are counted at the end of training (two-stage: prompt + the two"
                + " unfrozen layers). Prefix tuning starts from PEFT's default N(0, 1) prefix, which is far from"
                + " what the model's own keys and values look like, hence its high starting loss. A dynamic"
                + " prompt starts equal to a static one (its generator's last layer is zero). The numbers come"
                + " from one seed on a 260K-parameter model: they show that every method trains end to end,"
                + " not which method is best on real models.\n");
        return md.toString();
    }
}
