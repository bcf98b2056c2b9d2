package io.ptune.train;

import io.ptune.InvalidConfigException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * The one definition of every training setting: its key (the CLI's long flag without {@code --},
 * and the key in run-config files and {@code training_args.json}), its builder field (the name
 * {@link InvalidConfigException}s carry), its help text, how a value is parsed and set on a
 * {@link TrainingConfig.Builder}, how the resolved value is read back from a
 * {@link TrainingConfig}, and whether a resumed run must repeat it ({@link #fingerprint()}).
 *
 * <p>The CLI's flags, config-file keys, checkpoint fingerprints and saved configurations are all
 * generated from this list; a new setting is added here (and to {@link TrainingConfig}) only.
 */
public enum TrainingSetting {
    LEARNING_RATE("lr", "learningRate", "X", Kind.DOUBLE, true,
            "Peak learning rate of the prompt (default: 1e-2; 3e-3 with --stage2-layers).",
            TrainingConfig::learningRate, (b, v) -> b.learningRate((Double) v)),
    EPOCHS("epochs", "epochs", "N", Kind.INT, false,
            "Passes over the data (default: 1).",
            c -> c.maxSteps() > 0 ? null : c.epochs(), (b, v) -> b.epochs((Integer) v)),
    MAX_STEPS("max-steps", "maxSteps", "N", Kind.LONG, false,
            "Train exactly N optimizer steps instead of whole epochs.",
            c -> c.maxSteps() > 0 ? c.maxSteps() : null, (b, v) -> b.maxSteps((Long) v)),
    BATCH_SIZE("batch-size", "batchSize", "N", Kind.INT, true,
            "Examples per micro-batch (default: 8).",
            TrainingConfig::batchSize, (b, v) -> b.batchSize((Integer) v)),
    GRAD_ACCUM("grad-accum", "gradAccum", "N", Kind.INT, true,
            "Micro-batches per optimizer step (default: 1).",
            TrainingConfig::gradAccum, (b, v) -> b.gradAccum((Integer) v)),
    LOSS_AVERAGING("loss-averaging", "lossAveraging", "KIND", Kind.choice(LossAveraging.class), true,
            "With --grad-accum: tokens (mean over every label token of a step, as transformers' Trainer)"
                    + " | micro-batches (mean of the micro-batch means, as the plain PEFT loop) (default: tokens).",
            TrainingConfig::lossAveraging, (b, v) -> b.lossAveraging((LossAveraging) v)),
    MAX_LENGTH("max-length", "maxLength", "N", Kind.INT, true,
            "Longest tokenised example; longer ones are cut at the end (default: 256).",
            TrainingConfig::maxLength, (b, v) -> b.maxLength((Integer) v)),
    SEED("seed", "seed", "N", Kind.LONG, true,
            "Seed for prompt init and shuffling (default: 42).",
            TrainingConfig::seed, (b, v) -> b.seed((Long) v)),
    WARMUP_STEPS("warmup-steps", "warmupSteps", "N", Kind.LONG, true,
            "Linear warm-up steps (default: 0).",
            TrainingConfig::warmupSteps, (b, v) -> b.warmupSteps((Long) v)),
    SCHEDULE("schedule", "schedule", "KIND", Kind.choice(LrSchedule.class), true,
            "constant | linear | cosine (default: linear).",
            TrainingConfig::schedule, (b, v) -> b.schedule((LrSchedule) v)),
    WEIGHT_DECAY("weight-decay", "weightDecay", "X", Kind.DOUBLE, true,
            "AdamW weight decay (default: 0).",
            TrainingConfig::weightDecay, (b, v) -> b.weightDecay((Double) v)),
    MAX_GRAD_NORM("max-grad-norm", "maxGradNorm", "X", Kind.DOUBLE, true,
            "Gradient clipping norm (default: 1.0).",
            TrainingConfig::maxGradNorm, (b, v) -> b.maxGradNorm((Double) v)),
    ADAM_BETA1("adam-beta1", "beta1", "X", Kind.DOUBLE, true,
            "AdamW first-moment decay (default: 0.9).",
            TrainingConfig::beta1, (b, v) -> b.beta1((Double) v)),
    ADAM_BETA2("adam-beta2", "beta2", "X", Kind.DOUBLE, true,
            "AdamW second-moment decay (default: 0.999).",
            TrainingConfig::beta2, (b, v) -> b.beta2((Double) v)),
    ADAM_EPSILON("adam-epsilon", "epsilon", "X", Kind.DOUBLE, true,
            "AdamW denominator epsilon (default: 1e-8).",
            TrainingConfig::epsilon, (b, v) -> b.epsilon((Double) v)),
    LOG_EVERY("log-every", "logEvery", "N", Kind.INT, false,
            "Log a progress line every N optimizer steps (default: 10).",
            TrainingConfig::logEvery, (b, v) -> b.logEvery((Integer) v)),
    EVAL_EVERY("eval-every", "evalEvery", "N", Kind.LONG, true,
            "With a dev set: evaluate every N optimizer steps (default: once per epoch).",
            c -> c.evalEvery() > 0 ? c.evalEvery() : null, (b, v) -> b.evalEvery((Long) v)),
    METRIC("metric", "metric", "NAME", Kind.choice(DevMetric.class), true,
            "The dev metric early stopping and the kept adapter go by: dev-loss (the default) | accuracy |"
                    + " macro-f1 (the last two for --task classify).",
            TrainingConfig::metric, (b, v) -> b.metric((DevMetric) v)),
    PATIENCE("patience", "patience", "N", Kind.INT, true,
            "With a dev set: stop after N evaluations without a better --metric and keep the best prompt"
                    + " (default: 0, never stop early; the last prompt is kept).",
            TrainingConfig::patience, (b, v) -> b.patience((Integer) v)),
    ON_NONFINITE("on-nonfinite", "onNonFinite", "WHAT", Kind.choice(NonFinitePolicy.class), false,
            "A NaN or infinite loss or gradient norm: stop (the default) | skip (drop that accumulation"
                    + " cycle, count it in the metrics, go on).",
            TrainingConfig::onNonFinite, (b, v) -> b.onNonFinite((NonFinitePolicy) v)),
    MAX_NONFINITE("max-nonfinite", "maxNonFinite", "N", Kind.INT, false,
            "With --on-nonfinite skip: stop after N dropped cycles in a row (default: 10).",
            TrainingConfig::maxNonFinite, (b, v) -> b.maxNonFinite((Integer) v)),
    STAGE2_LAYERS("stage2-layers", "stage2Layers", "K", Kind.INT, true,
            "Two-stage training: after the prompt, also train the top K layers.",
            c -> c.twoStage() == null ? null : c.twoStage().layers(), (b, v) -> b.stage2Layers((Integer) v)),
    STAGE2_LR("stage2-lr", "stage2LearningRate", "X", Kind.DOUBLE, true,
            "Stage-2 layer learning rate (default: 1e-5).",
            c -> c.twoStage() == null ? null : c.twoStage().learningRate(),
            (b, v) -> b.stage2LearningRate((Double) v)),
    STAGE2_STEPS("stage2-steps", "stage2Steps", "N", Kind.LONG, false,
            "Stage-2 optimizer steps.",
            c -> c.twoStage() == null || c.twoStage().steps() == 0 ? null : c.twoStage().steps(),
            (b, v) -> b.stage2Steps((Long) v)),
    STAGE2_EPOCHS("stage2-epochs", "stage2Epochs", "N", Kind.INT, false,
            "Stage-2 passes over the data (default: 1).",
            c -> c.twoStage() == null || c.twoStage().steps() > 0 ? null : c.twoStage().epochs(),
            (b, v) -> b.stage2Epochs((Integer) v));

    private static final Map<String, TrainingSetting> BY_KEY = Arrays.stream(values())
            .collect(Collectors.toUnmodifiableMap(TrainingSetting::key, s -> s));

    private final String key;
    private final String field;
    private final String paramLabel;
    private final Kind kind;
    private final boolean fingerprint;
    private final String description;
    private final Function<TrainingConfig, Object> reader;
    private final BiConsumer<TrainingConfig.Builder, Object> writer;

    @SuppressWarnings("unchecked")
    <T> TrainingSetting(String key, String field, String paramLabel, Kind kind, boolean fingerprint,
            String description, Function<TrainingConfig, T> reader, BiConsumer<TrainingConfig.Builder, Object> writer) {
        this.key = key;
        this.field = field;
        this.paramLabel = paramLabel;
        this.kind = kind;
        this.fingerprint = fingerprint;
        this.description = description;
        this.reader = (Function<TrainingConfig, Object>) reader;
        this.writer = writer;
    }

    /** The long flag without {@code --}: also the run-config and {@code training_args.json} key. */
    public String key() {
        return key;
    }

    /** {@code --key}. */
    public String flag() {
        return "--" + key;
    }

    /** The {@link TrainingConfig.Builder} field, as {@link InvalidConfigException#field()} names it. */
    public String field() {
        return field;
    }

    public String paramLabel() {
        return paramLabel;
    }

    /** The help text (says the default). */
    public String description() {
        return description;
    }

    /** The Java type of a parsed value: Integer, Long, Double or String (a choice's name). */
    public Class<?> valueType() {
        return kind.type;
    }

    /** Whether a resumed run must repeat this setting (it changes what the run computes). */
    public boolean fingerprint() {
        return fingerprint;
    }

    /** The setting whose key is {@code key}, or null. */
    public static TrainingSetting byKey(String key) {
        return BY_KEY.get(key);
    }

    /**
     * Sets {@code value} (an Integer, Long or Double as {@link #valueType()} says, or a choice's
     * name such as {@code "cosine"} or {@code "micro-batches"}) on {@code builder}.
     *
     * @throws InvalidConfigException naming {@link #field()} when a choice is not one of its names
     */
    public void apply(TrainingConfig.Builder builder, Object value) {
        writer.accept(builder, kind.parse(this, value));
    }

    /**
     * The resolved value in {@code config} as a run-config file spells it (numbers as numbers, a
     * choice as its name), or null where the setting does not apply (e.g. {@code epochs} of a
     * run given {@code max-steps}, or stage-2 settings of a one-stage run).
     */
    public Object read(TrainingConfig config) {
        Object value = reader.apply(config);
        return value instanceof Enum<?> e ? Kind.choiceName(e) : value;
    }

    /** The choices of a choice setting, as spelt on the command line; empty for numbers. */
    public List<String> choices() {
        return kind.choices;
    }

    /** How a setting's values are parsed. */
    private record Kind(Class<?> type, Class<? extends Enum<?>> choice, List<String> choices) {
        static final Kind INT = new Kind(Integer.class, null, List.of());
        static final Kind LONG = new Kind(Long.class, null, List.of());
        static final Kind DOUBLE = new Kind(Double.class, null, List.of());

        static Kind choice(Class<? extends Enum<?>> type) {
            return new Kind(String.class, type,
                    Arrays.stream(type.getEnumConstants()).map(Kind::choiceName).toList());
        }

        static String choiceName(Enum<?> constant) {
            return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
        }

        Object parse(TrainingSetting setting, Object value) {
            if (choice == null) {
                if (!type.isInstance(value)) {
                    throw new IllegalArgumentException(setting.key + " takes a " + type.getSimpleName() + ", got "
                            + value);
                }
                return value;
            }
            if (value instanceof Enum<?> e && choice.isInstance(e)) {
                return e;
            }
            String name = String.valueOf(value).strip();
            for (Enum<?> constant : choice.getEnumConstants()) {
                if (choiceName(constant).equalsIgnoreCase(name) || constant.name().equalsIgnoreCase(name)) {
                    return constant;
                }
            }
            throw new InvalidConfigException(setting.field, "'" + value + "' is not one of "
                    + String.join(", ", choices));
        }
    }
}
