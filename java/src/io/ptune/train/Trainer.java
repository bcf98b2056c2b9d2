package io.ptune.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.CheckpointException;
import io.ptune.DatasetException;
import io.ptune.InvalidConfigException;
import io.ptune.ModelFormatException;
import io.ptune.PtuneException;
import io.ptune.TrainingDivergedException;
import io.ptune.adapter.PromptAdapter;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.AlpacaExample;
import io.ptune.data.Batch;
import io.ptune.data.BatchIterator;
import io.ptune.data.ChatTemplate;
import io.ptune.data.Collator;
import io.ptune.data.TokenizedExample;
import io.ptune.model.Model;
import io.ptune.nativebridge.EvalResult;
import io.ptune.nativebridge.LossAveragingKind;
import io.ptune.nativebridge.LrScheduleKind;
import io.ptune.nativebridge.MicroStepResult;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.nativebridge.OptimizerOptions;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Trains a prompt of any method (a {@link PromptModule}) in front of a frozen {@link Model}
 * on an Alpaca-style dataset, optionally in two stages ({@link TwoStageConfig}: the prompt alone,
 * then also the top layers at a lower rate).
 *
 * <p>Java prepares the data (template, tokens, shuffled padded batches); each micro-batch is one
 * native call that runs forward, loss, backward into the trainable parameters and, every
 * {@code gradAccum} calls, clipping, AdamW and the learning-rate schedule. The model is borrowed,
 * not owned; the prompt is owned when the trainer created it ({@link #create}).
 *
 * <p>Other threads may use the same model (with other prompts) while this trains: a step changes
 * only this prompt's parameters, and the second stage's unfrozen layers are the prompt's own
 * copies (see {@link Model}). {@link #close} from another thread waits for the step in flight;
 * the training then stops with an {@link IllegalStateException}.
 *
 * <pre>{@code
 * try (Model model = Model.load(dir);
 *      Trainer trainer = Trainer.create(model, promptConfig, trainingConfig, data)) {
 *     trainer.train();
 *     PromptAdapter.save(trainer.prompt(), out);
 * }
 * }</pre>
 */
public final class Trainer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Trainer.class);

    private final Model model;
    private final PromptModule prompt;
    private final boolean ownsPrompt;
    private final TrainingConfig config;
    private final ChatTemplate template;
    private final Collator collator;
    private final List<TokenizedExample> examples;
    private final long stage1Steps;
    private final long stage2Steps;
    private NativePromptTrainer nativeTrainer;
    private final List<TrainingListener> listeners = new CopyOnWriteArrayList<>();
    /** Where the run resumes (null for a new run). */
    private final TrainingCheckpoint.State resumeState;
    /** The checkpoint the run resumes (null for a new run). */
    private final Path resumeDir;
    /** What a resumed run must share with its checkpoint (see {@link #settings()}). */
    private final Map<String, String> settings;
    /** The configuration the prompt was created with, as checkpoints record it. */
    private final Map<String, String> promptSettings;
    /** The dev set evaluated during training ({@link #evaluateOn}), or null. */
    private List<TokenizedExample> devExamples;
    private String devSource;
    private long evalEvery;
    /** The caller's resolved configuration, recorded in checkpoints ({@link #recordArguments}), or null. */
    private JsonNode arguments;
    private Path checkpointDir;
    private long checkpointEvery;
    private int checkpointsKept;
    private boolean trained;
    private volatile boolean closed;

    /**
     * Prepares training of {@code prompt}'s trainable parameters on {@code data}: tokenises the
     * data and sets up the native optimizer for the number of steps the run will make. The prompt
     * is borrowed: it stays open after the trainer is closed.
     *
     * @throws DatasetException if no example has an answer token left after truncation
     * @throws InvalidConfigException if the data is too small for one optimizer step, or the
     *     two-stage settings do not fit the model
     */
    public Trainer(Model model, PromptModule prompt, TrainingConfig config, AlpacaDataset data) {
        this(model, prompt, false, config, data, null, null, null);
    }

    private Trainer(Model model, PromptModule prompt, boolean ownsPrompt, TrainingConfig config,
            AlpacaDataset data, TrainingCheckpoint.State resume, Path resumeDir, PromptMethodConfig expectedPrompt) {
        try {
            this.model = Objects.requireNonNull(model, "model");
            this.prompt = Objects.requireNonNull(prompt, "prompt");
            this.ownsPrompt = ownsPrompt;
            this.config = Objects.requireNonNull(config, "config");
            this.resumeState = resume;
            this.resumeDir = resumeDir;
            Objects.requireNonNull(data, "data");
            if (!model.architecture().causal()) {
                throw new InvalidConfigException("model", model.modelDir() + " is a " + model.architecture().modelType()
                        + " encoder; the causal-LM task (Alpaca data) trains decoders (llama, mistral, qwen2, gpt2,"
                        + " bloom)");
            }
            model.checkPromptModule(prompt);
            if (prompt.trainableParameterCount() == 0) {
                throw new PtuneException("nothing to train: every parameter of the " + prompt.method().cliName()
                        + " prompt is frozen (an adapter loaded for inference? load it with"
                        + " PromptAdapter.loadForTraining)");
            }
            TwoStageConfig twoStage = config.twoStage();
            if (twoStage != null) {
                int layers = model.architecture().numLayers();
                if (twoStage.layers() > layers) {
                    throw new InvalidConfigException("stage2Layers", "is " + twoStage.layers() + " but the model has"
                            + " only " + layers + " layers");
                }
                if (prompt.unfrozenLayers() > 0 && (resume == null || resume.stage() != 2)) {
                    throw new InvalidConfigException("stage2Layers", "the prompt already has its top "
                            + prompt.unfrozenLayers() + " layers unfrozen (a stage-2 adapter); drop the second stage"
                            + " to continue training it");
                }
            }
            this.template = new ChatTemplate(model.tokenizer(), eosTokenId(model), config.maxLength());
            this.collator = new Collator(model.padTokenId());
            this.examples = encode(data, "training");
            this.stage1Steps = totalSteps(examples.size(), config);
            this.stage2Steps = twoStage == null ? 0 : stage2Steps(examples.size(), config);
            this.settings = settings();
            this.promptSettings = resume == null ? TrainingCheckpoint.promptSettings(prompt.config()) : resume.prompt();
            if (resume == null) {
                this.nativeTrainer = new NativePromptTrainer(model.nativeModel(), prompt.nativePrompt(),
                        optimizerOptions(config.learningRate(), stage1Steps, config.warmupSteps()));
            } else {
                if (expectedPrompt != null) {
                    TrainingCheckpoint.checkPrompt(resume, expectedPrompt, resumeDir);
                }
                TrainingCheckpoint.checkSettings(resume, settings, resumeDir);
                this.nativeTrainer = new NativePromptTrainer(model.nativeModel(), prompt.nativePrompt(),
                        resume.stage() == 2 ? optimizerOptions(config.learningRate(), stage2Steps, 0)
                                : optimizerOptions(config.learningRate(), stage1Steps, config.warmupSteps()));
                TrainingCheckpoint.restoreMoments(resumeDir, prompt, nativeTrainer);
                nativeTrainer.setOptimizerStep(resume.stageStep());
                LOG.info("resuming from {}: stage {}, step {} of {}", resumeDir, resume.stage(), resume.step(),
                        stage1Steps + stage2Steps);
            }
        } catch (RuntimeException e) {
            if (nativeTrainer != null) {
                nativeTrainer.close();
            }
            if (ownsPrompt) {
                prompt.close();
            }
            throw e;
        }
    }

    /**
     * A trainer of a new prompt that starts as {@code promptConfig} says (see
     * {@link PromptModule#create}); the trainer owns it and closes it.
     */
    public static Trainer create(Model model, PromptMethodConfig promptConfig, TrainingConfig config,
            AlpacaDataset data) {
        return new Trainer(model, PromptModule.create(model, promptConfig), true, config, data, null, null, null);
    }

    /**
     * A trainer that continues the run a checkpoint was taken of ({@link #saveCheckpoints}): the
     * prompt, AdamW moments, schedule position and data position are restored, so {@link #train()}
     * ends where the uninterrupted run would have (bit for bit). {@code
     * checkpoint} is a {@code checkpoint-<step>} directory or the directory holding them (the
     * newest is used). The trainer owns the prompt.
     *
     * @throws InvalidConfigException naming the first setting (or the data size) that differs from
     *     the checkpoint's
     */
    public static Trainer resume(Model model, Path checkpoint, TrainingConfig config, AlpacaDataset data) {
        return resume(model, checkpoint, null, config, data);
    }

    /**
     * {@link #resume(Model, Path, TrainingConfig, AlpacaDataset)} that also checks the prompt: a
     * non-null {@code expectedPrompt} must equal the configuration the checkpoint's run created its
     * prompt with (a re-run of the same command), else the first differing field is named.
     *
     * @throws CheckpointException if the checkpoint is damaged (its manifest names the file)
     */
    public static Trainer resume(Model model, Path checkpoint, PromptMethodConfig expectedPrompt, TrainingConfig config,
            AlpacaDataset data) {
        Path dir = TrainingCheckpoint.resolve(checkpoint);
        TrainingCheckpoint.State state = TrainingCheckpoint.readState(dir);
        if (expectedPrompt != null) {
            TrainingCheckpoint.checkPrompt(state, expectedPrompt, dir);
        }
        PromptModule prompt = PromptAdapter.loadForTraining(dir.resolve(TrainingCheckpoint.ADAPTER_DIR), model);
        return new Trainer(model, prompt, true, config, data, state, dir, expectedPrompt);
    }

    /**
     * What a job scheduler's restart needs: continues from the newest valid checkpoint in
     * {@code checkpointDir} (damaged ones are skipped with a warning), or starts a new run of
     * {@code promptConfig} when there is none; logs which. A resumed run must have been started
     * with {@code promptConfig}, {@code config} and {@code data}. Call {@link #saveCheckpoints}
     * with the same directory to keep the run restartable.
     */
    public static Trainer resumeOrCreate(Model model, Path checkpointDir, PromptMethodConfig promptConfig,
            TrainingConfig config, AlpacaDataset data) {
        Objects.requireNonNull(promptConfig, "promptConfig");
        Optional<Path> newest = TrainingCheckpoint.newestValid(checkpointDir);
        if (newest.isEmpty()) {
            LOG.info("no checkpoint in {}: starting a new run", checkpointDir);
            return create(model, promptConfig, config, data);
        }
        LOG.info("resuming from {}", newest.get());
        return resume(model, newest.get(), promptConfig, config, data);
    }

    /** Whether this trainer continues a checkpoint (else it starts a new run). */
    public boolean isResumed() {
        return resumeState != null;
    }

    /**
     * Writes a checkpoint ({@link TrainingCheckpoint}) into {@code dir/checkpoint-<step>} after every
     * {@code everySteps} optimizer steps, keeping the newest {@code keepLast}. Call before
     * {@link #train()}.
     */
    public Trainer saveCheckpoints(Path dir, long everySteps, int keepLast) {
        ensureOpen();
        if (everySteps <= 0) {
            throw new InvalidConfigException("saveEvery", "must be > 0, got " + everySteps);
        }
        if (keepLast <= 0) {
            throw new InvalidConfigException("keepCheckpoints", "must be > 0, got " + keepLast);
        }
        this.checkpointDir = Objects.requireNonNull(dir, "dir");
        TrainingCheckpoint.removeStaleTemporaries(dir);
        this.checkpointEvery = everySteps;
        this.checkpointsKept = keepLast;
        return this;
    }

    /**
     * Evaluates the prompt's mean dev loss per label token on {@code dev} every
     * {@link TrainingConfig#evalEvery()} optimizer steps (default: once per epoch) and after the
     * last step, and tells the listeners ({@link TrainingListener#onDev}). With
     * {@link TrainingConfig#patience()} &gt; 0, training stops after that many evaluations without a
     * lower dev loss, and the prompt of the best evaluation is kept. Checkpoints record the
     * evaluations (and the best prompt), so a resumed run stops where the uninterrupted one would;
     * it must evaluate a dev set of as many examples. Call before {@link #train()}.
     *
     * @throws InvalidConfigException if the metric is not dev loss (the causal-LM task has no
     *     accuracy)
     */
    public Trainer evaluateOn(AlpacaDataset dev) {
        ensureOpen();
        Objects.requireNonNull(dev, "dev");
        if (config.metric() != DevMetric.DEV_LOSS) {
            throw new InvalidConfigException("metric", "is " + config.metric().columnName() + ", but the causal-LM"
                    + " task measures the dev loss only; use dev-loss (accuracy and macro-f1 are for classification)");
        }
        this.devExamples = encode(dev, "dev");
        this.devSource = String.valueOf(dev.source());
        this.evalEvery = config.evalEvery() > 0 ? config.evalEvery()
                : Math.max(1, stepsOfEpochs(examples.size(), config, 1, "gradAccum"));
        return this;
    }

    /**
     * Records the caller's resolved configuration (e.g. the CLI's {@code training_args.json}) in
     * every checkpoint, as {@link TrainingCheckpoint#ARGUMENTS_FILE}, so a restarted job can compare
     * itself against the run it continues. Call before {@link #train()}.
     */
    public Trainer recordArguments(JsonNode resolvedArguments) {
        ensureOpen();
        this.arguments = resolvedArguments == null ? null : resolvedArguments.deepCopy();
        return this;
    }

    /** The checkpoint directory this trainer continues, or empty for a new run. */
    public Optional<Path> resumedFrom() {
        return Optional.ofNullable(resumeDir);
    }

    /** The optimizer step a resumed trainer continues after (0 for a new run). */
    public long resumedStep() {
        return resumeState == null ? 0 : resumeState.step();
    }

    /**
     * What a resumed run must share with the checkpoint (builder field names -> values): the
     * {@link TrainingSetting#fingerprint()} settings, the number of examples and the resolved step
     * counts of both stages (so {@code --epochs 2} and the equal {@code --max-steps} resume each other).
     */
    private Map<String, String> settings() {
        Map<String, String> s = new LinkedHashMap<>();
        s.put("examples", Integer.toString(examples.size()));
        for (TrainingSetting setting : TrainingSetting.values()) {
            if (setting.fingerprint()) {
                Object value = setting.read(config);
                s.put(setting.field(), value == null ? "none" : String.valueOf(value));
            }
        }
        s.put("maxSteps", Long.toString(stage1Steps));
        s.put("stage2Steps", Long.toString(stage2Steps));
        return s;
    }

    private OptimizerOptions optimizerOptions(double learningRate, long steps, long warmupSteps) {
        return new OptimizerOptions(learningRate, config.weightDecay(), config.beta1(), config.beta2(),
                config.epsilon(), config.maxGradNorm(), config.gradAccum(), steps, warmupSteps,
                LrScheduleKind.valueOf(config.schedule().name()),
                LossAveragingKind.valueOf(config.lossAveraging().name()));
    }

    /**
     * The number of optimizer steps the first (or only) stage makes: {@code maxSteps} when set,
     * else the whole micro-batches of all epochs divided by {@code gradAccum} (a trailing remainder
     * of fewer than {@code gradAccum} micro-batches is not trained, since it could not complete a
     * step).
     */
    public static long totalSteps(long numExamples, TrainingConfig config) {
        if (config.maxSteps() > 0) {
            return config.maxSteps();
        }
        return stepsOfEpochs(numExamples, config, config.epochs(), "gradAccum");
    }

    /** The number of optimizer steps the second stage makes (0 without one). */
    public static long stage2Steps(long numExamples, TrainingConfig config) {
        if (config.twoStage() == null) {
            return 0;
        }
        TwoStageConfig twoStage = config.twoStage();
        if (twoStage.steps() > 0) {
            return twoStage.steps();
        }
        return stepsOfEpochs(numExamples, config, twoStage.epochs(), "stage2Epochs");
    }

    private static long stepsOfEpochs(long numExamples, TrainingConfig config, int epochs, String field) {
        long microBatches = BatchIterator.batchesPerEpoch(numExamples, config.batchSize()) * epochs;
        long steps = microBatches / config.gradAccum();
        if (steps == 0) {
            throw new InvalidConfigException(field, "the data gives only " + microBatches
                    + " micro-batches of " + config.batchSize() + " in " + epochs
                    + " epoch(s), fewer than gradAccum = " + config.gradAccum()
                    + "; lower --grad-accum or --batch-size, or train more epochs");
        }
        return steps;
    }

    /** Listeners get every optimizer step, in the order they were added. */
    public void addListener(TrainingListener listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    /** The number of optimizer steps {@link #train()} makes (both stages). */
    public long totalSteps() {
        return stage1Steps + stage2Steps;
    }

    /** The optimizer steps of the first stage (all of them without a second stage). */
    public long stage1Steps() {
        return stage1Steps;
    }

    /** The training examples after tokenisation (and after dropping those without answer tokens). */
    public int numExamples() {
        return examples.size();
    }

    /**
     * Runs the training loop: the first stage, then the second when configured. Can be called once.
     *
     * @throws TrainingDivergedException if a loss or gradient norm becomes NaN or infinite (with
     *     {@link NonFinitePolicy#SKIP}: that many times in a row)
     */
    public TrainingSummary train() {
        ensureOpen();
        if (trained) {
            throw new IllegalStateException("train() was already called on this trainer");
        }
        trained = true;
        if (config.patience() > 0) {
            checkEarlyStopping();
        }
        if (resumeState != null) {
            checkResumedDev();
        }
        long total = totalSteps();
        LOG.info("training a {} prompt ({} virtual tokens, {} trainable parameters) on {} examples: {} optimizer"
                + " steps, batch {} x {} accumulation, lr {} ({}, warm-up {})", prompt.method().cliName(),
                prompt.numVirtualTokens(), prompt.trainableParameterCount(), examples.size(), stage1Steps,
                config.batchSize(), config.gradAccum(), config.learningRate(), config.schedule(),
                config.warmupSteps());
        Progress progress = new Progress();
        progress.best = devExamples == null ? null : new BestPrompt(config.metric());
        BatchIterator resumeBatches = null;
        int startStage = 1;
        long startStageStep = 0;
        if (resumeState != null) {
            progress.step = resumeState.step();
            progress.firstLoss = resumeState.firstLoss();
            progress.lastLoss = resumeState.lastLoss();
            progress.epoch = resumeState.epoch() + 1;
            progress.tokensBefore = resumeState.totalTokens();
            resumeBatches = batchesOf(resumeState.epoch());
            resumeBatches.skip(resumeState.consumedMicroBatches());
            startStage = resumeState.stage();
            startStageStep = resumeState.stageStep();
            if (progress.best != null) {
                TrainingCheckpoint.DevState dev = resumeState.dev();
                progress.best.restore(dev, config.patience() > 0 && dev.bestStep() > 0
                        ? TrainingCheckpoint.readBestPrompt(resumeDir, prompt) : null);
                progress.stoppedEarly = dev.stoppedEarly();
                if (dev.stoppedEarly()) {
                    LOG.info("the run of {} had stopped early at step {}: keeping its best prompt, no more training",
                            resumeDir, resumeState.step());
                }
            }
        }
        long loopStart = System.nanoTime();
        try (ProgressBar bar = progressBar(total)) {
            if (startStage == 1 && !progress.stoppedEarly) {
                runStage(1, stage1Steps, 0, total, progress, bar, startStageStep, resumeBatches);
            }
            TwoStageConfig twoStage = config.twoStage();
            if (progress.stoppedEarly) {
                LOG.info("stopped early at step {}: no better dev loss in {} evaluations", progress.step,
                        config.patience());
            } else if (twoStage != null && startStage == 2) {
                runStage(2, stage2Steps, stage1Steps, total, progress, bar, startStageStep, resumeBatches);
            } else if (twoStage != null) {
                prompt.unfreezeTopLayers(twoStage.layers(), twoStage.learningRate());
                nativeTrainer.close();
                nativeTrainer = null;
                nativeTrainer = new NativePromptTrainer(model.nativeModel(), prompt.nativePrompt(),
                        optimizerOptions(config.learningRate(), stage2Steps, 0));
                LOG.info("stage 2: top {} layers unfrozen at lr {} ({} trainable parameters), {} more steps",
                        twoStage.layers(), twoStage.learningRate(), prompt.trainableParameterCount(), stage2Steps);
                runStage(2, stage2Steps, stage1Steps, total, progress, bar, 0, null);
            }
        }
        if (config.patience() > 0 && progress.best.step > 0) {
            progress.best.restoreInto(prompt);
            LOG.info("kept the prompt of step {} (dev loss {})", progress.best.step, fmt(progress.best.value));
        }
        Duration elapsed = Duration.ofNanos(System.nanoTime() - loopStart);
        double tokensPerSecond = progress.totalTokens / Math.max(elapsed.toNanos() / 1e9, 1e-9);
        LOG.info("trained {} steps in {} s: loss {} -> {}, {} tokens/s", progress.step,
                String.format("%.1f", elapsed.toMillis() / 1000.0), fmt(progress.firstLoss), fmt(progress.lastLoss),
                String.format("%.0f", tokensPerSecond));
        return new TrainingSummary(progress.step, progress.epoch, progress.firstLoss, progress.lastLoss,
                tokensPerSecond, elapsed, progress.droppedCycles,
                progress.best == null ? 0 : progress.best.step, progress.best == null ? Double.NaN : progress.best.value,
                progress.best == null ? Double.NaN : progress.best.last, progress.stoppedEarly);
    }

    private BatchIterator batchesOf(int epoch) {
        return new BatchIterator(examples, config.batchSize(), collator, config.seed(), epoch, true);
    }

    /** What the micro-batches of the current accumulation cycle added up to. */
    private static final class Cycle {
        double lossSum;
        double tokenLossSum;
        int microBatches;
        long tokens;
        long labelTokens;

        void add(MicroStepResult result, long realTokens) {
            lossSum += result.loss();
            tokenLossSum += result.loss() * result.labelTokens();
            microBatches++;
            tokens += realTokens;
            labelTokens += result.labelTokens();
        }
    }

    /** Counters carried across the stages. */
    private static final class Progress {
        long step;
        int epoch;
        long totalTokens;
        /** Tokens of the run before it was resumed (for checkpoints, not for this run's tokens/s). */
        long tokensBefore;
        double firstLoss = Double.NaN;
        double lastLoss = Double.NaN;
        /** Accumulation cycles dropped for a non-finite loss or gradient, in the run and in a row. */
        long droppedCycles;
        int droppedInARow;
        /** The best dev evaluation so far (null without a dev set). */
        BestPrompt best;
        boolean stoppedEarly;
    }

    /** The best dev evaluation so far and, with early stopping, a copy of the prompt it measured. */
    private final class BestPrompt {
        final DevMetric metric;
        long step;
        double value = Double.NaN;
        double last = Double.NaN;
        int evaluationsSince;
        Map<String, float[]> parameters;

        BestPrompt(DevMetric metric) {
            this.metric = metric;
        }

        /** Continues from a checkpoint's evaluations; {@code best} is null without early stopping. */
        void restore(TrainingCheckpoint.DevState saved, Map<String, float[]> best) {
            step = saved.bestStep();
            value = saved.best();
            last = saved.last();
            evaluationsSince = saved.evaluationsSince();
            parameters = best;
        }

        /** What a checkpoint records of the evaluations so far. */
        TrainingCheckpoint.DevState saved(boolean stoppedEarly) {
            return new TrainingCheckpoint.DevState(devExamples.size(), step, value, evaluationsSince, last,
                    stoppedEarly);
        }

        /** Records an evaluation; returns whether it is a new best. */
        boolean record(long atStep, double measured) {
            last = measured;
            if (metric.improves(measured, value)) {
                step = atStep;
                value = measured;
                evaluationsSince = 0;
                if (config.patience() > 0) {
                    parameters = prompt.readAll(prompt.parameterNames());
                }
                return true;
            }
            evaluationsSince++;
            return false;
        }

        void restoreInto(PromptModule target) {
            parameters.forEach(target::write);
        }
    }

    private void checkEarlyStopping() {
        if (devExamples == null) {
            throw new InvalidConfigException("patience", "needs a dev set to watch (--dev FILE, or"
                    + " Trainer.evaluateOn)");
        }
        if (config.twoStage() != null) {
            throw new InvalidConfigException("patience", "cannot be combined with stage2Layers yet; stop early in a"
                    + " one-stage run");
        }
    }

    /**
     * Fails naming {@code dev} when this run evaluates a dev set and the run of its checkpoint did
     * not, the other way round, or the two dev sets differ in size.
     */
    private void checkResumedDev() {
        TrainingCheckpoint.DevState saved = resumeState.dev();
        if (devExamples == null && saved != null) {
            throw new InvalidConfigException("dev", "is not given here, but the run the checkpoint " + resumeDir
                    + " continues evaluated a dev set of " + saved.devExamples() + " examples; resume with that dev"
                    + " set (--dev FILE, Trainer.evaluateOn)");
        }
        if (devExamples != null && saved == null) {
            throw new InvalidConfigException("dev", "is " + devSource + " here, but the run the checkpoint " + resumeDir
                    + " continues evaluated no dev set (its " + TrainingCheckpoint.STATE_FILE + " has no early_stopping"
                    + " record); resume without --dev (Trainer.evaluateOn), or start a new run");
        }
        if (devExamples != null && devExamples.size() != saved.devExamples()) {
            throw new InvalidConfigException("dev", "is " + devSource + " with " + devExamples.size() + " examples here,"
                    + " but the run the checkpoint " + resumeDir + " continues evaluated " + saved.devExamples()
                    + "; resume with the dev set it was started with");
        }
    }

    /** Evaluates the dev set at {@code step}; returns whether training should stop early. */
    private boolean evaluateDev(long step, Progress progress) {
        double devLoss = evaluateEncoded(devExamples, devSource);
        boolean better = progress.best.record(step, devLoss);
        LOG.info("step {}: dev loss {}{}", step, fmt(devLoss), better ? " (best)" : "");
        Map<String, Double> metrics = Map.of(DevMetric.DEV_LOSS.devKey(), devLoss);
        for (TrainingListener listener : listeners) {
            listener.onDev(step, metrics);
        }
        return config.patience() > 0 && progress.best.evaluationsSince >= config.patience();
    }

    /**
     * Optimizer steps of stage {@code stage} with the current native trainer, from
     * {@code startStageStep} to {@code steps}; metrics count from {@code offset}. {@code batches} is
     * the partly used epoch of a resumed run, or null.
     */
    private void runStage(int stage, long steps, long offset, long total, Progress progress, ProgressBar bar,
            long startStageStep, BatchIterator batches) {
        long stepStart = System.nanoTime();
        long stageStep = startStageStep;
        Cycle cycle = new Cycle();
        long microBatches = 0;
        long microBatchLimit = (steps - startStageStep + 1) * config.gradAccum();
        while (stageStep < steps) {
            if (batches == null || !batches.hasNext()) {
                batches = batchesOf(progress.epoch);
                progress.epoch++;
            }
            Batch batch = batches.next();
            if (++microBatches > microBatchLimit) {
                // A native trainer that never reports a step would otherwise loop forever.
                throw new PtuneException("the native trainer made " + stageStep + " optimizer steps in "
                        + (microBatches - 1) + " micro-batches with gradAccum " + config.gradAccum()
                        + "; expected " + steps);
            }
            MicroStepResult result = nativeTrainer.trainMicroBatch(batch.ids(), batch.mask(),
                    batch.labels(), batch.batchSize(), batch.seqLen());
            if (result.cycleDropped()) {
                // The native trainer discarded the cycle: no step, the prompt and moments unchanged.
                double value = Double.isFinite(result.loss()) ? result.gradNorm() : result.loss();
                String what = Double.isFinite(result.loss()) ? "gradient norm" : "loss";
                if (config.onNonFinite() == NonFinitePolicy.STOP) {
                    throw new TrainingDivergedException(offset + stageStep + 1, value);
                }
                progress.droppedCycles++;
                progress.droppedInARow++;
                microBatchLimit += cycle.microBatches + 1;
                LOG.warn("step {}: the {} is {}; dropped this accumulation cycle ({} in a row, {} in the run;"
                        + " --on-nonfinite skip)", offset + stageStep + 1, what, value, progress.droppedInARow,
                        progress.droppedCycles);
                if (progress.droppedInARow >= config.maxNonFinite()) {
                    throw new TrainingDivergedException(offset + stageStep + 1, value, progress.droppedInARow);
                }
                cycle = new Cycle();
                continue;
            }
            cycle.add(result, batch.realTokens());
            if (!result.optimizerStepped()) {
                continue;
            }
            stageStep = result.optimizerStep();
            long step = offset + stageStep;
            progress.droppedInARow = 0;
            long now = System.nanoTime();
            double seconds = Math.max((now - stepStart) / 1e9, 1e-9);
            // The loss the optimizer step minimised, averaged as the gradients were.
            double stepLoss = config.lossAveraging() == LossAveraging.TOKENS
                    ? cycle.tokenLossSum / Math.max(cycle.labelTokens, 1) : cycle.lossSum / cycle.microBatches;
            StepMetrics metrics = new StepMetrics(step, total, stepLoss,
                    result.learningRate(), cycle.tokens / seconds, result.gradNorm(), cycle.labelTokens,
                    progress.droppedCycles);
            if (Double.isNaN(progress.firstLoss)) {
                progress.firstLoss = metrics.loss();
            }
            progress.lastLoss = metrics.loss();
            progress.totalTokens += cycle.tokens;
            progress.step = step;
            publish(metrics, total, bar);
            if (devExamples != null && (step % evalEvery == 0 || step == total)) {
                progress.stoppedEarly = evaluateDev(step, progress);
            }
            // A run that stops early checkpoints its stop, so a restarted job only writes the best prompt.
            if (checkpointDir != null && (step % checkpointEvery == 0 || progress.stoppedEarly)) {
                BestPrompt best = progress.best;
                Path written = TrainingCheckpoint.write(checkpointDir, prompt, nativeTrainer,
                        new TrainingCheckpoint.State(stage, step, stageStep, batches.epoch(), batches.served(),
                                progress.firstLoss, progress.lastLoss, progress.tokensBefore + progress.totalTokens,
                                settings, promptSettings, best == null ? null : best.saved(progress.stoppedEarly)),
                        arguments, best == null ? null : best.parameters, checkpointsKept);
                LOG.info("step {}: checkpoint written to {}", step, written);
            }
            stepStart = now;
            cycle = new Cycle();
            if (progress.stoppedEarly) {
                return;
            }
        }
    }

    /**
     * Mean loss per label token of the current prompt on {@code data} (no gradients, batches in
     * file order). Usable before, between and after training.
     */
    public double evaluate(AlpacaDataset data) {
        ensureOpen();
        return evaluateEncoded(encode(data, "evaluation"), String.valueOf(data.source()));
    }

    private double evaluateEncoded(List<TokenizedExample> evalExamples, String source) {
        BatchIterator batches = new BatchIterator(evalExamples, config.batchSize(), collator, 0, 0, false);
        double lossSum = 0;
        long labelTokens = 0;
        while (batches.hasNext()) {
            Batch batch = batches.next();
            EvalResult result = nativeTrainer.evaluate(batch.ids(), batch.mask(), batch.labels(),
                    batch.batchSize(), batch.seqLen());
            lossSum += result.lossSum();
            labelTokens += result.labelTokens();
        }
        if (labelTokens == 0) {
            throw new DatasetException(source + ": no label tokens to evaluate");
        }
        return lossSum / labelTokens;
    }

    /** The prompt being trained (owned by this trainer when it was made with {@link #create}). */
    public PromptModule prompt() {
        ensureOpen();
        return prompt;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            try {
                if (nativeTrainer != null) {
                    nativeTrainer.close();
                }
            } finally {
                if (ownsPrompt) {
                    prompt.close();
                }
            }
        }
    }

    private void publish(StepMetrics metrics, long total, ProgressBar bar) {
        if (metrics.step() % config.logEvery() == 0 || metrics.step() == total) {
            LOG.info("step {}/{} loss {} lr {} grad-norm {} {} tokens/s", metrics.step(), total,
                    fmt(metrics.loss()), String.format("%.3g", metrics.learningRate()),
                    fmt(metrics.gradNorm()), String.format("%.0f", metrics.tokensPerSecond()));
        }
        if (bar != null) {
            bar.stepTo(metrics.step());
            bar.setExtraMessage(" loss " + fmt(metrics.loss()));
        }
        for (TrainingListener listener : listeners) {
            listener.onStep(metrics);
        }
    }

    /** A progress bar on stderr, only for an interactive terminal (not in logs or CI). */
    private ProgressBar progressBar(long total) {
        if (System.console() == null) {
            return null;
        }
        return new ProgressBarBuilder().setTaskName("train").setInitialMax(total)
                .setStyle(ProgressBarStyle.ASCII)
                .setConsumer(new ConsoleProgressBarConsumer(System.err))
                .build();
    }

    private List<TokenizedExample> encode(AlpacaDataset data, String purpose) {
        List<TokenizedExample> out = new ArrayList<>(data.size());
        int dropped = 0;
        for (AlpacaExample example : data.examples()) {
            TokenizedExample encoded = template.encode(example);
            // An example truncated to its prompt has nothing to learn and would give a 0/0 loss.
            if (encoded.labelTokens() == 0) {
                dropped++;
            } else {
                out.add(encoded);
            }
        }
        if (dropped > 0) {
            LOG.warn("{}: {} of {} {} examples have no answer token within maxLength {} and are skipped;"
                    + " raise --max-length to keep them", data.source(), dropped, data.size(), purpose,
                    config.maxLength());
        }
        if (out.isEmpty()) {
            throw new DatasetException(data.source() + ": no " + purpose + " example keeps an answer"
                    + " token within maxLength " + config.maxLength() + "; raise --max-length");
        }
        // Checked here, before the native core meets the sequence in the middle of a run.
        int longest = out.stream().mapToInt(TokenizedExample::length).max().orElse(0);
        int positions = model.architecture().maxPositionEmbeddings();  // 0: no limit (ALiBi)
        if (positions > 0 && longest + prompt.numVirtualTokens() > positions) {
            throw new InvalidConfigException("maxLength", "is " + config.maxLength() + ", but " + data.source()
                    + " has a " + purpose + " example of " + longest + " tokens, which with " + prompt.numVirtualTokens()
                    + " virtual tokens exceeds the model's " + positions + " positions (config.json max_position_embeddings /"
                    + " n_positions); give --max-length "
                    + Math.max(1, positions - prompt.numVirtualTokens()) + " or less");
        }
        return out;
    }

    private static long eosTokenId(Model model) {
        if (!model.eosTokenIds().isEmpty()) {
            return model.eosTokenIds().get(0);
        }
        throw new ModelFormatException(model.modelDir() + " defines no eos_token_id (config.json,"
                + " generation_config.json or tokenizer_config.json); training needs it to end answers");
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("trainer is closed; create a new one (Trainer.create or Trainer.resume)");
        }
    }

    private static String fmt(double value) {
        return String.format("%.4f", value);
    }
}
