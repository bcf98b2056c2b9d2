package io.ptune.train;

import io.ptune.DatasetException;
import io.ptune.InvalidConfigException;
import io.ptune.ModelFormatException;
import io.ptune.PtuneException;
import io.ptune.TrainingDivergedException;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.AlpacaExample;
import io.ptune.data.Batch;
import io.ptune.data.BatchIterator;
import io.ptune.data.ChatTemplate;
import io.ptune.data.Collator;
import io.ptune.data.TokenizedExample;
import io.ptune.model.CausalLm;
import io.ptune.nativebridge.EvalResult;
import io.ptune.nativebridge.LrScheduleKind;
import io.ptune.nativebridge.MicroStepResult;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.nativebridge.OptimizerOptions;
import io.ptune.prompt.PromptInitializer;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Trains a soft prompt in front of a frozen {@link CausalLm} on an Alpaca-style dataset.
 *
 * <p>Java prepares the data (template, tokens, shuffled padded batches); each micro-batch is one
 * native call that runs forward, loss, backward into the prompt and, every {@code gradAccum}
 * calls, clipping, AdamW and the learning-rate schedule. The model is borrowed, not owned.
 *
 * <pre>{@code
 * try (CausalLm model = CausalLm.load(dir);
 *      Trainer trainer = Trainer.create(model, promptConfig, trainingConfig, data)) {
 *     trainer.train();
 *     PeftAdapter.of(trainer.trainedPrompt(), promptConfig, dir).save(out, model.architecture());
 * }
 * }</pre>
 */
public final class Trainer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Trainer.class);

    private final CausalLm model;
    private final TrainingConfig config;
    private final ChatTemplate template;
    private final Collator collator;
    private final List<TokenizedExample> examples;
    private final long totalSteps;
    private final NativePromptTrainer nativeTrainer;
    private final int numVirtualTokens;
    private final List<TrainingListener> listeners = new CopyOnWriteArrayList<>();
    private boolean trained;
    private boolean closed;

    /**
     * Prepares training of {@code initialPrompt} on {@code data}: tokenises the data and sets up the
     * native optimizer for the number of steps the run will make.
     *
     * @throws DatasetException if no example has an answer token left after truncation
     * @throws InvalidConfigException if the data is too small for one optimizer step
     */
    public Trainer(CausalLm model, SoftPrompt initialPrompt, TrainingConfig config, AlpacaDataset data) {
        this.model = Objects.requireNonNull(model, "model");
        this.config = Objects.requireNonNull(config, "config");
        Objects.requireNonNull(initialPrompt, "initialPrompt");
        Objects.requireNonNull(data, "data");
        model.checkPrompt(initialPrompt);
        this.numVirtualTokens = initialPrompt.numVirtualTokens();
        this.template = new ChatTemplate(model.tokenizer(), eosTokenId(model), config.maxLength());
        this.collator = new Collator(model.padTokenId());
        this.examples = encode(data, "training");
        this.totalSteps = totalSteps(examples.size(), config);
        OptimizerOptions options = new OptimizerOptions(config.learningRate(), config.weightDecay(),
                config.beta1(), config.beta2(), config.epsilon(), config.maxGradNorm(), config.gradAccum(),
                totalSteps, config.warmupSteps(), LrScheduleKind.valueOf(config.schedule().name()));
        this.nativeTrainer = new NativePromptTrainer(model.nativeModel(), initialPrompt.values(),
                initialPrompt.numVirtualTokens(), options);
    }

    /** A trainer whose prompt starts as {@code promptConfig} says (see {@link PromptInitializer}). */
    public static Trainer create(CausalLm model, PromptTuningConfig promptConfig, TrainingConfig config,
            AlpacaDataset data) {
        return new Trainer(model, PromptInitializer.initialize(promptConfig, model), config, data);
    }

    /**
     * The number of optimizer steps a run makes: {@code maxSteps} when set, else the whole
     * micro-batches of all epochs divided by {@code gradAccum} (a trailing remainder of fewer than
     * {@code gradAccum} micro-batches is not trained, since it could not complete a step).
     */
    public static long totalSteps(long numExamples, TrainingConfig config) {
        if (config.maxSteps() > 0) {
            return config.maxSteps();
        }
        long microBatches = BatchIterator.batchesPerEpoch(numExamples, config.batchSize()) * config.epochs();
        long steps = microBatches / config.gradAccum();
        if (steps == 0) {
            throw new InvalidConfigException("gradAccum", "the data gives only " + microBatches
                    + " micro-batches of " + config.batchSize() + " in " + config.epochs()
                    + " epoch(s), fewer than gradAccum = " + config.gradAccum()
                    + "; lower --grad-accum or --batch-size, or train more epochs");
        }
        return steps;
    }

    /** Listeners get every optimizer step, in the order they were added. */
    public void addListener(TrainingListener listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    /** The number of optimizer steps {@link #train()} makes. */
    public long totalSteps() {
        return totalSteps;
    }

    /** The training examples after tokenisation (and after dropping those without answer tokens). */
    public int numExamples() {
        return examples.size();
    }

    /**
     * Runs the training loop. Can be called once.
     *
     * @throws TrainingDivergedException if a loss becomes NaN or infinite
     */
    public TrainingSummary train() {
        ensureOpen();
        if (trained) {
            throw new IllegalStateException("train() was already called on this trainer");
        }
        trained = true;
        LOG.info("training {} virtual tokens on {} examples: {} optimizer steps, batch {} x {} accumulation,"
                + " lr {} ({}, warm-up {})", numVirtualTokens, examples.size(), totalSteps,
                config.batchSize(), config.gradAccum(), config.learningRate(), config.schedule(),
                config.warmupSteps());

        long loopStart = System.nanoTime();
        long stepStart = loopStart;
        long totalTokens = 0;
        long step = 0;
        int epoch = 0;
        double firstLoss = Double.NaN;
        double lastLoss = Double.NaN;
        double stepLossSum = 0;
        int stepMicroBatches = 0;
        long stepTokens = 0;
        long stepLabelTokens = 0;
        long microBatches = 0;
        long microBatchLimit = (totalSteps + 1) * config.gradAccum();

        try (ProgressBar bar = progressBar()) {
            while (step < totalSteps) {
                BatchIterator batches = new BatchIterator(examples, config.batchSize(), collator,
                        config.seed(), epoch, true);
                epoch++;
                while (batches.hasNext() && step < totalSteps) {
                    Batch batch = batches.next();
                    if (++microBatches > microBatchLimit) {
                        // A native trainer that never reports a step would otherwise loop forever.
                        throw new PtuneException("the native trainer made " + step + " optimizer steps in "
                                + (microBatches - 1) + " micro-batches with gradAccum " + config.gradAccum()
                                + "; expected " + totalSteps);
                    }
                    MicroStepResult result = nativeTrainer.trainMicroBatch(batch.ids(), batch.mask(),
                            batch.labels(), batch.batchSize(), batch.seqLen());
                    if (!Double.isFinite(result.loss())) {
                        throw new TrainingDivergedException(step + 1, result.loss());
                    }
                    stepLossSum += result.loss();
                    stepMicroBatches++;
                    stepTokens += batch.realTokens();
                    stepLabelTokens += result.labelTokens();
                    if (!result.optimizerStepped()) {
                        continue;
                    }
                    step = result.optimizerStep();
                    if (!Double.isFinite(result.gradNorm())) {
                        throw new TrainingDivergedException(step, result.gradNorm());
                    }
                    long now = System.nanoTime();
                    double seconds = Math.max((now - stepStart) / 1e9, 1e-9);
                    StepMetrics metrics = new StepMetrics(step, totalSteps, stepLossSum / stepMicroBatches,
                            result.learningRate(), stepTokens / seconds, result.gradNorm(), stepLabelTokens);
                    if (Double.isNaN(firstLoss)) {
                        firstLoss = metrics.loss();
                    }
                    lastLoss = metrics.loss();
                    totalTokens += stepTokens;
                    publish(metrics, bar);
                    stepStart = now;
                    stepLossSum = 0;
                    stepMicroBatches = 0;
                    stepTokens = 0;
                    stepLabelTokens = 0;
                }
            }
        }
        Duration elapsed = Duration.ofNanos(System.nanoTime() - loopStart);
        double tokensPerSecond = totalTokens / Math.max(elapsed.toNanos() / 1e9, 1e-9);
        LOG.info("trained {} steps in {} s: loss {} -> {}, {} tokens/s", step,
                String.format("%.1f", elapsed.toMillis() / 1000.0), fmt(firstLoss), fmt(lastLoss),
                String.format("%.0f", tokensPerSecond));
        return new TrainingSummary(step, epoch, firstLoss, lastLoss, tokensPerSecond, elapsed);
    }

    /**
     * Mean loss per label token of the current prompt on {@code data} (no gradients, batches in
     * file order). Usable before, between and after training.
     */
    public double evaluate(AlpacaDataset data) {
        ensureOpen();
        List<TokenizedExample> evalExamples = encode(data, "evaluation");
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
            throw new DatasetException(data.source() + ": no label tokens to evaluate");
        }
        return lossSum / labelTokens;
    }

    /** The prompt as it is now (the trained one after {@link #train()}). */
    public SoftPrompt trainedPrompt() {
        ensureOpen();
        return new SoftPrompt(numVirtualTokens, model.architecture().hiddenSize(), nativeTrainer.prompt());
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            nativeTrainer.close();
        }
    }

    private void publish(StepMetrics metrics, ProgressBar bar) {
        if (metrics.step() % config.logEvery() == 0 || metrics.step() == totalSteps) {
            LOG.info("step {}/{} loss {} lr {} grad-norm {} {} tokens/s", metrics.step(), totalSteps,
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
    private ProgressBar progressBar() {
        if (System.console() == null) {
            return null;
        }
        return new ProgressBarBuilder().setTaskName("train").setInitialMax(totalSteps)
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
        return out;
    }

    private static long eosTokenId(CausalLm model) {
        if (!model.eosTokenIds().isEmpty()) {
            return model.eosTokenIds().get(0);
        }
        throw new ModelFormatException(model.modelDir() + " defines no eos_token_id (config.json,"
                + " generation_config.json or tokenizer_config.json); training needs it to end answers");
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("trainer is closed");
        }
    }

    private static String fmt(double value) {
        return String.format("%.4f", value);
    }
}
