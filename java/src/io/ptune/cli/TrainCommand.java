package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.model.Model;
import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethod;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.report.TrainingPlots;
import io.ptune.train.MetricsWriter;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSummary;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code ptune train}: trains a prompt of any method and writes it as a PEFT-layout adapter. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a prompt (prompt tuning, P-tuning, prefix tuning, composite or dynamic) on an"
                + " Alpaca-style dataset (--task causal-lm, the default) or a classifier on labelled data"
                + " (--task classify); write a PEFT-layout adapter.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class TrainCommand extends CliCommand {
    private static final int DEFAULT_VIRTUAL_TOKENS = 20;

    /** Adds the training settings' flags (generated from {@link io.ptune.train.TrainingSetting}). */
    @Spec
    void addSettingOptions(CommandSpec commandSpec) {
        SettingOptions.addTo(commandSpec);
    }

    @Option(names = "--task", paramLabel = "TASK",
            description = "causal-lm (Alpaca data, the default) | classify (labelled data, a classification head).")
    String task;

    @Mixin
    ModelOptions model;

    @Option(names = "--data", required = true, paramLabel = "FILE",
            description = "causal-lm: Alpaca data, a JSON array or JSON Lines of {instruction, input, output}."
                    + " classify: CSV / TSV with a header, JSON Lines or a JSON array, with a text and a label field.")
    Path data;

    @Option(names = "--dev", paramLabel = "FILE",
            description = "Dev data in --data's format, evaluated every --eval-every steps (default: once per epoch)"
                    + " for --patience and the plots. classify: labelled dev data (default: a stratified"
                    + " --dev-fraction of --data, split with --seed).")
    Path dev;

    @Option(names = "--dev-fraction", paramLabel = "X",
            description = "classify without --dev: the share of each class held out as dev data (default: 0.1;"
                    + " 0 trains on everything and evaluates nothing).")
    Double devFraction;

    @Option(names = "--train-examples", paramLabel = "N",
            description = "classify: train on a stratified sample of about N training examples (seeded by --seed;"
                    + " drawn after the dev split).")
    Integer trainExamples;

    @Mixin
    ClassifierOptions classifier;

    @Option(names = "--loss", paramLabel = "KIND",
            description = "classify: ce (cross-entropy) | focal (default: ce).")
    String loss;

    @Option(names = "--focal-gamma", paramLabel = "X", description = "Focal loss focusing parameter (default: 2).")
    Double focalGamma;

    @Option(names = "--focal-alpha", paramLabel = "A,B,..",
            description = "Focal loss per-class weights, in label order (the mean is divided by the sum of the"
                    + " batch's weights).")
    String focalAlpha;

    @Option(names = "--label-smoothing", paramLabel = "X",
            description = "Cross-entropy label smoothing in [0, 1) (default: 0).")
    Double labelSmoothing;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Where to write the adapter (adapter_config.json, adapter_model.safetensors, extra files).")
    Path out;

    @Option(names = "--method", paramLabel = "METHOD",
            description = "prompt-tuning | p-tuning | prefix-tuning | composite | dynamic (default: prompt-tuning).")
    String method;

    @Option(names = "--virtual-tokens", paramLabel = "N",
            description = "Number of virtual tokens (prefix positions for prefix tuning; default: "
                    + DEFAULT_VIRTUAL_TOKENS + "). Composite prompts take the sizes from --blocks.")
    Integer virtualTokens;

    @Option(names = "--init", paramLabel = "SPEC",
            description = "random | vocab | text:\"...\" | labels:word1,word2 | from-adapter:DIR (default: random)."
                    + " Not for prefix tuning; composite blocks set their own.")
    String init;

    @Option(names = "--encoder", paramLabel = "TYPE",
            description = "P-tuning encoder: mlp | lstm (default: mlp).")
    String encoder;

    @Option(names = "--encoder-hidden-size", paramLabel = "N",
            description = "P-tuning encoder / prefix projection width (default: token_dim, as PEFT).")
    Integer encoderHiddenSize;

    @Option(names = "--encoder-layers", paramLabel = "N", description = "P-tuning LSTM layers (default: 2).")
    Integer encoderLayers;

    @Option(names = "--encoder-dropout", paramLabel = "X", description = "P-tuning LSTM dropout (default: 0).")
    Double encoderDropout;

    @Option(names = "--prefix-projection", description = "Prefix tuning: reparameterise the prefix through an MLP.")
    boolean prefixProjection;

    @Option(names = "--generator-hidden-size", paramLabel = "N",
            description = "Dynamic prompt generator width (default: the model's hidden size).")
    Integer generatorHiddenSize;

    @Option(names = "--blocks", paramLabel = "FILE",
            description = "Composite prompt: JSON list of blocks {name, num_virtual_tokens, init, learning_rate,"
                    + " frozen}; init takes the --init forms (a relative from-adapter:DIR is resolved against the"
                    + " file's folder).")
    Path blocks;

    @Option(names = "--save-every", paramLabel = "N",
            description = "Write a training checkpoint (prompt, AdamW moments, data position) every N optimizer"
                    + " steps into --checkpoint-dir.")
    Long saveEvery;

    @Option(names = "--checkpoint-dir", paramLabel = "DIR",
            description = "Where checkpoint-<step> directories go (default: <out>-checkpoints).")
    Path checkpointDir;

    @Option(names = "--keep-checkpoints", paramLabel = "N",
            description = "How many of the newest checkpoints to keep (default: 2).")
    Integer keepCheckpoints;

    @Option(names = "--resume-from", paramLabel = "DIR",
            description = "Continue the run a checkpoint was taken of (a checkpoint-<step> directory, or the"
                    + " directory holding them: the newest valid one is used). Give the same data and training"
                    + " flags; the prompt comes from the checkpoint (prompt flags may be repeated: they must"
                    + " match it).")
    Path resumeFrom;

    @Option(names = "--resume",
            description = "Restartable job: continue from the newest valid checkpoint in --checkpoint-dir, or start"
                    + " afresh when there is none. Re-run the same command line after a kill; a flag whose"
                    + " value differs from the checkpoint's is an error.")
    boolean resume;

    @Option(names = "--metrics-out", paramLabel = "FILE",
            description = "Write one JSON line per optimizer step: step, loss, lr, tokens_per_s (with"
                    + " --resume-from the file is continued after the checkpoint's step).")
    Path metricsOut;

    @Option(names = "--no-plots",
            description = "Do not draw loss.png, learning_rate.png, dev_metrics.png and confusion_matrix.png"
                    + " into --out.")
    boolean noPlots;

    @Override
    protected Map<String, String> flagNames() {
        Map<String, String> names = new java.util.HashMap<>(ClassifierOptions.FLAGS);
        names.putAll(SettingOptions.FLAGS);
        names.putAll(ownFlagNames());
        return names;
    }

    private static Map<String, String> ownFlagNames() {
        return Map.ofEntries(
                Map.entry("numVirtualTokens", "--virtual-tokens"),
                Map.entry("initText", "--init"),
                Map.entry("labelWords", "--init"),
                Map.entry("initAdapter", "--init"),
                Map.entry("encoderHiddenSize", "--encoder-hidden-size"),
                Map.entry("encoderNumLayers", "--encoder-layers"),
                Map.entry("encoderDropout", "--encoder-dropout"),
                Map.entry("generatorHiddenSize", "--generator-hidden-size"),
                Map.entry("blocks", "--blocks"),
                Map.entry("examples", "--data examples"),
                Map.entry("dev", "--dev"),
                Map.entry("saveEvery", "--save-every"),
                Map.entry("keepCheckpoints", "--keep-checkpoints"),
                Map.entry("method", "--method"),
                Map.entry("init", "--init"),
                Map.entry("initialization", "--init"),
                Map.entry("encoderType", "--encoder"),
                Map.entry("prefixProjection", "--prefix-projection"));
    }

    @Override
    protected int run() {
        checkWritable(out, "--out");
        if (isClassify()) {
            return new ClassifyTraining(this).run();
        }
        rejectClassifyFlags();
        if (resume && resumeFrom != null) {
            throw new IllegalArgumentException("--resume and --resume-from exclude each other: --resume finds the"
                    + " newest checkpoint in --checkpoint-dir itself");
        }
        // Validate every flag before the model is loaded, so typos fail fast. Resuming, prompt flags
        // are optional; given, they must describe the checkpoint's prompt.
        PromptMethodConfig promptConfig = resumeFrom == null || promptFlagsGiven() ? promptConfig() : null;
        TrainingConfig trainingConfig = trainingConfig();
        if ((checkpointDir != null || keepCheckpoints != null) && saveEvery == null && !resume) {
            throw new IllegalArgumentException("--checkpoint-dir and --keep-checkpoints need --save-every N");
        }
        AlpacaDataset dataset = AlpacaDataset.load(data);
        AlpacaDataset devSet = dev == null ? null : AlpacaDataset.load(dev);
        Path checkpoints = checkpointDir != null ? checkpointDir
                : out.toAbsolutePath().resolveSibling(out.getFileName() + "-checkpoints");
        ObjectNode arguments = TrainingArgs.resolved(spec, trainingConfig, resolvedPromptFlags());

        try (Model lm = model.load();
                Trainer trainer = resume ? Trainer.resumeOrCreate(lm, checkpoints, promptConfig, trainingConfig, dataset)
                        : resumeFrom != null ? Trainer.resume(lm, resumeFrom, promptConfig, trainingConfig, dataset)
                        : Trainer.create(lm, promptConfig, trainingConfig, dataset);
                MetricsWriter metrics = metricsOut == null ? null
                        : !trainer.isResumed() ? new MetricsWriter(metricsOut)
                        : MetricsWriter.resumedAfter(metricsOut, trainer.resumedStep())) {
            trainer.resumedFrom().ifPresent(dir -> TrainingArgs.checkResume(arguments, dir));
            trainer.recordArguments(arguments);
            if (metrics != null) {
                trainer.addListener(metrics);
            }
            if (devSet != null) {
                trainer.evaluateOn(devSet);
            }
            TrainingPlots plots = noPlots ? null : new TrainingPlots();
            if (plots != null) {
                trainer.addListener(plots);
            }
            if (saveEvery != null) {
                trainer.saveCheckpoints(checkpoints, saveEvery, keepCheckpoints == null ? 2 : keepCheckpoints);
            }
            TrainingSummary summary = trainer.train();
            PromptAdapter.save(trainer.prompt(), out);
            TrainingArgs.write(out, arguments);
            TrainingArgs.writeResults(out, TrainingArgs.results(summary.steps(), summary.firstLoss(),
                    summary.lastLoss(), devSet == null ? null : trainingConfig.metric().columnName(),
                    summary.bestStep(), summary.bestDevMetric(), summary.keptDevMetric(trainingConfig),
                    summary.stoppedEarly()));
            if (plots != null) {
                plots.write(out);
            }
            out().printf(Locale.ROOT, "trained %d steps (%s, %d trainable parameters), loss %.4f -> %.4f, %.0f tokens/s;"
                    + " adapter written to %s%n", summary.steps(), trainer.prompt().method().cliName(),
                    trainer.prompt().trainableParameterCount(), summary.firstLoss(), summary.lastLoss(),
                    summary.tokensPerSecond(), out);
            if (summary.bestStep() > 0) {
                out().printf(Locale.ROOT, "dev loss %.4f at step %d (best)%s%n", summary.bestDevMetric(),
                        summary.bestStep(), summary.stoppedEarly() ? "; stopped early" : "");
            }
            out().flush();
        }
        return 0;
    }

    /**
     * The prompt flags' resolved values for {@code training_args.json}: the method, and the number
     * of virtual tokens where the method takes one.
     */
    Map<String, Object> resolvedPromptFlags() {
        Map<String, Object> resolved = new java.util.HashMap<>();
        resolved.put("method", methodName());
        if (!methodName().equals(PromptMethod.COMPOSITE.cliName()) && !methodName().equals("none")) {
            resolved.put("virtual-tokens", virtualTokens == null ? DEFAULT_VIRTUAL_TOKENS : virtualTokens);
        }
        return resolved;
    }

    boolean isClassify() {
        if (task == null || task.equals("causal-lm")) {
            return false;
        }
        if (task.equals("classify")) {
            return true;
        }
        throw new IllegalArgumentException("--task '" + task + "' is not one of causal-lm, classify");
    }

    private void rejectClassifyFlags() {
        List<String> given = new ArrayList<>();
        if (devFraction != null) {
            given.add("--dev-fraction");
        }
        if (trainExamples != null) {
            given.add("--train-examples");
        }
        if (classifier.anyGiven()) {
            given.add("--head/--pooling/--template/--verbalizer/--multi-token/--calibrate/--*-field");
        }
        if (loss != null || focalGamma != null || focalAlpha != null || labelSmoothing != null) {
            given.add("--loss/--focal-*/--label-smoothing");
        }
        if (!given.isEmpty()) {
            throw new IllegalArgumentException(String.join(", ", given) + ": classification flags need --task classify");
        }
    }

    /** The method's config from the flags; flags of another method are an error, not ignored. */
    PromptMethodConfig promptConfig() {
        PromptMethod kind = PromptMethod.parse(methodName());
        rejectUnless(encoder != null || encoderLayers != null || encoderDropout != null,
                kind == PromptMethod.P_TUNING, "--encoder, --encoder-layers and --encoder-dropout are", "p-tuning");
        rejectUnless(encoderHiddenSize != null, kind == PromptMethod.P_TUNING || kind == PromptMethod.PREFIX_TUNING,
                "--encoder-hidden-size is", "p-tuning and prefix-tuning");
        rejectUnless(prefixProjection, kind == PromptMethod.PREFIX_TUNING, "--prefix-projection is", "prefix-tuning");
        rejectUnless(generatorHiddenSize != null, kind == PromptMethod.DYNAMIC, "--generator-hidden-size is",
                "dynamic");
        rejectUnless(blocks != null, kind == PromptMethod.COMPOSITE, "--blocks is", "composite");
        rejectUnless(init != null, kind != PromptMethod.PREFIX_TUNING && kind != PromptMethod.COMPOSITE,
                "--init is", "prompt-tuning, p-tuning and dynamic (composite blocks set their own init in --blocks;"
                        + " a prefix starts at random)");
        rejectUnless(virtualTokens != null, kind != PromptMethod.COMPOSITE, "--virtual-tokens is",
                "every method but composite (its blocks give their sizes in --blocks)");
        int n = virtualTokens == null ? DEFAULT_VIRTUAL_TOKENS : virtualTokens;
        PromptInitSpec initSpec;
        try {
            initSpec = init == null ? PromptInitSpec.random() : PromptInitSpec.parse(init, null);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--" + e.getMessage(), e);
        }
        long promptSeed = trainingConfig().seed();
        return switch (kind) {
            case PROMPT_TUNING -> PromptTuningConfig.builder().numVirtualTokens(n).initialization(initSpec)
                    .seed(promptSeed).build();
            case P_TUNING -> {
                PTuningConfig.Builder builder = PTuningConfig.builder().numVirtualTokens(n).initialization(initSpec)
                        .encoderType(encoderType()).seed(promptSeed);
                ifGiven(encoderHiddenSize, builder::encoderHiddenSize);
                ifGiven(encoderLayers, builder::encoderNumLayers);
                ifGiven(encoderDropout, builder::encoderDropout);
                yield builder.build();
            }
            case PREFIX_TUNING -> {
                PrefixTuningConfig.Builder builder = PrefixTuningConfig.builder().numVirtualTokens(n)
                        .prefixProjection(prefixProjection).seed(promptSeed);
                ifGiven(encoderHiddenSize, builder::encoderHiddenSize);
                yield builder.build();
            }
            case COMPOSITE -> {
                if (blocks == null) {
                    throw new IllegalArgumentException("--method composite needs --blocks FILE, a JSON list of"
                            + " blocks like [{\"name\": \"base\", \"num_virtual_tokens\": 8}]");
                }
                yield CompositePromptConfig.builder().blocks(CompositePromptConfig.readBlocksFile(blocks))
                        .seed(promptSeed).build();
            }
            case DYNAMIC -> {
                DynamicPromptConfig.Builder builder = DynamicPromptConfig.builder().numVirtualTokens(n)
                        .initialization(initSpec).seed(promptSeed);
                ifGiven(generatorHiddenSize, builder::generatorHiddenSize);
                yield builder.build();
            }
        };
    }

    String methodName() {
        return method == null ? PromptMethod.PROMPT_TUNING.cliName() : method;
    }

    /**
     * Fails before the model is loaded when {@code dir} cannot become a folder: a file in its place
     * or above it, or a read-only nearest existing folder (no training run is wasted on it).
     */
    static void checkWritable(Path dir, String flag) {
        Path target = dir.toAbsolutePath().normalize();
        if (Files.exists(target) && !Files.isDirectory(target)) {
            throw new IllegalArgumentException(flag + " " + dir + " is a file, not a folder; choose another " + flag);
        }
        Path existing = target;
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return;
        }
        if (!Files.isDirectory(existing)) {
            throw new IllegalArgumentException(flag + " " + dir + ": " + existing + " is a file, not a folder; choose"
                    + " another " + flag);
        }
        if (!Files.isWritable(existing)) {
            throw new IllegalArgumentException(flag + " " + dir + ": " + existing + " is not writable; choose another "
                    + flag + " (a folder you can write to)");
        }
    }

    /** Whether any flag that shapes the prompt was given. */
    private boolean promptFlagsGiven() {
        return method != null || virtualTokens != null || init != null || encoder != null || encoderLayers != null
                || encoderDropout != null || encoderHiddenSize != null || prefixProjection
                || generatorHiddenSize != null || blocks != null;
    }

    private PromptEncoderType encoderType() {
        if (encoder == null) {
            return PromptEncoderType.MLP;
        }
        try {
            return PromptEncoderType.valueOf(encoder.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--encoder '" + encoder + "' is not one of mlp, lstm");
        }
    }

    private void rejectUnless(boolean given, boolean allowed, String flags, String methods) {
        if (given && !allowed) {
            throw new IllegalArgumentException(flags + " only used with --method " + methods + ", not with --method "
                    + methodName() + "; remove it or choose that method");
        }
    }

    /** The training settings given on the command line or in --config, the rest at their defaults. */
    TrainingConfig trainingConfig() {
        return SettingOptions.config(spec);
    }
}
