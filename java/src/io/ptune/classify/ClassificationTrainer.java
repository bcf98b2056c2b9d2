package io.ptune.classify;

import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.TrainingDivergedException;
import io.ptune.data.BatchIterator;
import io.ptune.data.ClassificationDataset;
import io.ptune.nativebridge.ClassLossOptions;
import io.ptune.nativebridge.LossAveragingKind;
import io.ptune.nativebridge.LrScheduleKind;
import io.ptune.nativebridge.MicroStepResult;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.nativebridge.OptimizerOptions;
import io.ptune.train.LossAveraging;
import io.ptune.train.StepMetrics;
import io.ptune.train.Trainer;
import io.ptune.train.TrainingConfig;
import io.ptune.train.DevMetric;
import io.ptune.train.TrainingListener;
import io.ptune.train.TwoStageConfig;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Trains a {@link PromptClassifier}'s prompt and head (the model stays frozen) on labelled data
 * with a classification loss ({@link ClassLoss}), optionally in two stages (the top layers
 * unfrozen after the prompt, {@link TwoStageConfig}), evaluating on a dev set after every epoch.
 *
 * <p>{@link TrainingConfig} gives the optimizer, batch and schedule settings as for the causal-LM
 * task; its maxLength is not used (the classifier has its own). Batches are shuffled per epoch by
 * (seed, epoch) and right-padded; each micro-batch is one native call (forward, loss, backward,
 * and every gradAccum calls clipping + AdamW + schedule).
 *
 * <pre>{@code
 * try (Model model = Model.load(dir);
 *      PromptClassifier classifier = PromptClassifier.create(model, promptConfig, classification,
 *              train.labels(), 128);
 *      ClassificationTrainer trainer = new ClassificationTrainer(classifier, training, ClassLoss.CROSS_ENTROPY,
 *              train, dev)) {
 *     trainer.train();
 *     classifier.save(out);
 * }
 * }</pre>
 */
public final class ClassificationTrainer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ClassificationTrainer.class);

    private final PromptClassifier classifier;
    private final TrainingConfig config;
    private final ClassLoss loss;
    private final List<ClassifierInput> inputs;
    private final int[] gold;
    private final ClassificationDataset dev;
    private final long stage1Steps;
    private final long stage2Steps;
    private final List<TrainingListener> stepListeners = new CopyOnWriteArrayList<>();
    private final List<Consumer<EpochMetrics>> epochListeners = new CopyOnWriteArrayList<>();
    private NativePromptTrainer nativeTrainer;
    private boolean trained;
    private boolean closed;

    /**
     * Prepares training: encodes the data and sets up the native optimizer. The classifier is
     * borrowed (it stays open after the trainer is closed).
     *
     * @param dev evaluated after every epoch, or null
     * @throws InvalidConfigException when nothing is trainable, the class weights do not match the
     *     labels, or the two-stage settings do not fit
     * @throws io.ptune.DatasetException naming the line of an example whose label the classifier
     *     does not have
     */
    public ClassificationTrainer(PromptClassifier classifier, TrainingConfig config, ClassLoss loss,
            ClassificationDataset train, ClassificationDataset dev) {
        this.classifier = Objects.requireNonNull(classifier, "classifier");
        this.config = Objects.requireNonNull(config, "config");
        this.loss = Objects.requireNonNull(loss, "loss");
        Objects.requireNonNull(train, "train");
        this.dev = dev;
        int[] counts = new int[classifier.labels().size()];
        this.gold = classifier.goldIndices(train);
        for (int g : gold) {
            counts[g]++;
        }
        if (java.util.Arrays.stream(counts).filter(c -> c > 0).count() < 2) {
            throw new InvalidConfigException("labels", train.source() + ": the training data has examples of only one"
                    + " class; classification needs at least two");
        }
        if (dev != null) {
            classifier.goldIndices(dev);
        }
        double[] weights = loss.weights(classifier.labels().size());
        if (classifier.trainableParameterCount() == 0) {
            throw new InvalidConfigException("head", "nothing to train: the " + classifier.config().head().cliName()
                    + " head has no parameters and there is no trainable prompt; give a prompt method (--method) or"
                    + " evaluate zero-shot with `ptune eval`");
        }
        TwoStageConfig twoStage = config.twoStage();
        if (twoStage != null) {
            if (classifier.prompt() == null) {
                throw new InvalidConfigException("stage2Layers", "two-stage training unfreezes layers behind a prompt;"
                        + " give a prompt method");
            }
            if (twoStage.layers() > classifier.model().architecture().numLayers()) {
                throw new InvalidConfigException("stage2Layers", "is " + twoStage.layers() + " but the model has only "
                        + classifier.model().architecture().numLayers() + " layers");
            }
        }
        if (config.patience() > 0 && dev == null) {
            throw new InvalidConfigException("patience", "needs a dev set to watch (--dev FILE or --dev-fraction)");
        }
        if (config.patience() > 0 && twoStage != null) {
            throw new InvalidConfigException("patience", "cannot be combined with stage2Layers yet; stop early in a"
                    + " one-stage run");
        }
        this.inputs = classifier.encode(train);
        this.stage1Steps = Trainer.totalSteps(inputs.size(), config);
        this.stage2Steps = Trainer.stage2Steps(inputs.size(), config);
        this.nativeTrainer = newNativeTrainer(config.learningRate(), stage1Steps, config.warmupSteps(), weights);
    }

    private NativePromptTrainer newNativeTrainer(double learningRate, long steps, long warmup, double[] weights) {
        OptimizerOptions options = new OptimizerOptions(learningRate, config.weightDecay(), config.beta1(),
                config.beta2(), config.epsilon(), config.maxGradNorm(), config.gradAccum(), steps, warmup,
                LrScheduleKind.valueOf(config.schedule().name()), LossAveragingKind.valueOf(config.lossAveraging().name()));
        ClassLossOptions lossOptions = new ClassLossOptions(ClassLossOptions.Kind.values()[loss.kind().ordinal()],
                loss.focalGamma(), loss.labelSmoothing(), weights);
        return new NativePromptTrainer(classifier.model().nativeModel(), classifier.nativePrompt(),
                classifier.nativeHead(), options, lossOptions);
    }

    /** Listeners get every optimizer step. */
    public void addListener(TrainingListener listener) {
        stepListeners.add(Objects.requireNonNull(listener, "listener"));
    }

    /** Listeners get the end of every epoch (with dev metrics when there is a dev set). */
    public void addEpochListener(Consumer<EpochMetrics> listener) {
        epochListeners.add(Objects.requireNonNull(listener, "listener"));
    }

    /** The optimizer steps {@link #train()} makes (both stages). */
    public long totalSteps() {
        return stage1Steps + stage2Steps;
    }

    /**
     * Runs the training loop. Can be called once.
     *
     * @throws TrainingDivergedException if a loss becomes NaN or infinite
     */
    public ClassificationSummary train() {
        ensureOpen();
        if (trained) {
            throw new IllegalStateException("train() was already called on this trainer");
        }
        trained = true;
        classifier.dropCalibration();
        LOG.info("training a {} classifier ({} prompt, {} trainable parameters) on {} examples, {} labels: {} optimizer"
                + " steps, batch {} x {}, lr {}", classifier.config().head().cliName(),
                classifier.prompt() == null ? "no" : classifier.prompt().method().cliName(),
                classifier.trainableParameterCount(), inputs.size(), classifier.labels().size(), totalSteps(),
                config.batchSize(), config.gradAccum(), config.learningRate());
        Loop loop = new Loop();
        long start = System.nanoTime();
        runStage(stage1Steps, 0, loop);
        TwoStageConfig twoStage = config.twoStage();
        if (loop.stoppedEarly) {
            LOG.info("stopped early after epoch {}: no better dev {} in {} epochs", loop.epoch,
                    config.metric().columnName(), config.patience());
        } else if (twoStage != null) {
            classifier.prompt().unfreezeTopLayers(twoStage.layers(), twoStage.learningRate());
            nativeTrainer.close();
            nativeTrainer = null;
            nativeTrainer = newNativeTrainer(config.learningRate(), stage2Steps, 0,
                    loss.weights(classifier.labels().size()));
            LOG.info("stage 2: top {} layers unfrozen at lr {} ({} trainable parameters), {} more steps",
                    twoStage.layers(), twoStage.learningRate(), classifier.trainableParameterCount(), stage2Steps);
            runStage(stage2Steps, stage1Steps, loop);
        }
        if (!loop.stoppedEarly && (loop.position > 0 || loop.epochs.isEmpty())) {
            endEpoch(loop);  // a partial last epoch (maxSteps) still gets its dev metrics
        }
        if (config.patience() > 0 && loop.bestParameters != null) {
            restore(loop.bestParameters);
            LOG.info("kept the classifier of epoch {} (dev {} {})", loop.bestEpoch, config.metric().columnName(),
                    fmt(loop.best));
        }
        classifier.dropCalibration();
        Duration elapsed = Duration.ofNanos(System.nanoTime() - start);
        double examplesPerSecond = loop.examples / Math.max(loop.trainNanos / 1e9, 1e-9);
        LOG.info("trained {} steps in {} s: loss {} -> {}, {} examples/s", loop.step,
                String.format("%.1f", elapsed.toMillis() / 1000.0), fmt(loop.firstLoss), fmt(loop.lastLoss),
                String.format("%.1f", examplesPerSecond));
        return new ClassificationSummary(loop.step, loop.firstLoss, loop.lastLoss, examplesPerSecond, elapsed,
                loop.epochs, loop.bestEpoch, loop.best, loop.stoppedEarly);
    }

    /** Counters across the stages. */
    private static final class Loop {
        long step;
        int epoch;
        List<Integer> order;
        int position;
        double firstLoss = Double.NaN;
        double lastLoss = Double.NaN;
        double epochLossSum;
        int epochSteps;
        long examples;
        long trainNanos;
        final List<EpochMetrics> epochs = new ArrayList<>();
        /** Early stopping: the best dev metric, its epoch, epochs since, and the parameters then. */
        double best = Double.NaN;
        int bestEpoch;
        int epochsSinceBest;
        Snapshot bestParameters;
        boolean stoppedEarly;
    }

    private void runStage(long steps, long offset, Loop loop) {
        long stageStep = 0;
        double lossSum = 0;
        double weightedLossSum = 0;
        long weight = 0;
        int microBatches = 0;
        long stepStart = System.nanoTime();
        long microBatchLimit = (steps + 1) * config.gradAccum();
        long made = 0;
        while (stageStep < steps) {
            if (loop.order == null || loop.position >= loop.order.size()) {
                if (loop.order != null) {
                    loop.trainNanos += System.nanoTime() - stepStart;
                    endEpoch(loop);
                    if (loop.stoppedEarly) {
                        return;
                    }
                    stepStart = System.nanoTime();
                }
                loop.order = shuffled(loop.epoch);
                loop.position = 0;
            }
            int end = Math.min(loop.position + config.batchSize(), loop.order.size());
            List<ClassifierInput> batch = new ArrayList<>();
            long[] labels = new long[end - loop.position];
            for (int j = loop.position; j < end; j++) {
                batch.add(inputs.get(loop.order.get(j)));
                labels[j - loop.position] = gold[loop.order.get(j)];
            }
            loop.position = end;
            if (++made > microBatchLimit) {
                throw new PtuneException("the native trainer made " + stageStep + " optimizer steps in " + (made - 1)
                        + " micro-batches with gradAccum " + config.gradAccum() + "; expected " + steps);
            }
            PromptClassifier.Collated c = classifier.collate(batch);
            MicroStepResult result = nativeTrainer.trainClassBatch(c.ids(), c.mask(), c.tokenTypes(), c.slots(), labels,
                    c.batch(), c.length());
            if (result.cycleDropped()) {
                // A NaN or infinite loss or gradient norm: the native trainer made no step.
                throw new TrainingDivergedException(offset + stageStep + 1,
                        Double.isFinite(result.loss()) ? result.gradNorm() : result.loss());
            }
            loop.examples += batch.size();
            lossSum += result.loss();
            weightedLossSum += result.loss() * result.labelTokens();
            weight += result.labelTokens();
            microBatches++;
            if (!result.optimizerStepped()) {
                continue;
            }
            stageStep = result.optimizerStep();
            loop.step = offset + stageStep;
            long now = System.nanoTime();
            double stepLoss = config.lossAveraging() == LossAveraging.TOKENS ? weightedLossSum / Math.max(weight, 1)
                    : lossSum / microBatches;
            if (Double.isNaN(loop.firstLoss)) {
                loop.firstLoss = stepLoss;
            }
            loop.lastLoss = stepLoss;
            loop.epochLossSum += stepLoss;
            loop.epochSteps++;
            double seconds = Math.max((now - stepStart) / 1e9, 1e-9);
            loop.trainNanos += now - stepStart;
            StepMetrics metrics = new StepMetrics(loop.step, totalSteps(), stepLoss, result.learningRate(),
                    weight / seconds, result.gradNorm(), weight);
            if (loop.step % config.logEvery() == 0 || loop.step == totalSteps()) {
                LOG.info("step {}/{} loss {} lr {} grad-norm {}", loop.step, totalSteps(), fmt(stepLoss),
                        String.format("%.3g", result.learningRate()), fmt(result.gradNorm()));
            }
            for (TrainingListener listener : stepListeners) {
                listener.onStep(metrics);
            }
            lossSum = 0;
            weightedLossSum = 0;
            weight = 0;
            microBatches = 0;
            stepStart = System.nanoTime();
        }
        loop.trainNanos += System.nanoTime() - stepStart;
    }

    private List<Integer> shuffled(int epoch) {
        List<Integer> order = new ArrayList<>(inputs.size());
        for (int i = 0; i < inputs.size(); i++) {
            order.add(i);
        }
        Collections.shuffle(order, new Random(BatchIterator.epochSeed(config.seed(), epoch)));
        return order;
    }

    private void endEpoch(Loop loop) {
        loop.epoch++;
        PromptClassifier.Evaluation evaluation = null;
        if (dev != null) {
            classifier.dropCalibration();
            evaluation = classifier.evaluate(dev);
            classifier.dropCalibration();
            LOG.info("epoch {} (step {}): dev loss {} accuracy {} macro-F1 {}", loop.epoch, loop.step,
                    fmt(evaluation.loss()), fmt(evaluation.metrics().accuracy()), fmt(evaluation.metrics().macroF1()));
        }
        EpochMetrics metrics = new EpochMetrics(loop.epoch, loop.step,
                loop.epochSteps == 0 ? Double.NaN : loop.epochLossSum / loop.epochSteps, evaluation);
        loop.epochs.add(metrics);
        loop.epochLossSum = 0;
        loop.epochSteps = 0;
        loop.position = 0;
        loop.order = null;
        for (Consumer<EpochMetrics> listener : epochListeners) {
            listener.accept(metrics);
        }
        if (evaluation != null) {
            Map<String, Double> devMetrics = new LinkedHashMap<>();
            devMetrics.put(DevMetric.DEV_LOSS.devKey(), evaluation.loss());
            devMetrics.put(DevMetric.ACCURACY.devKey(), evaluation.metrics().accuracy());
            devMetrics.put(DevMetric.MACRO_F1.devKey(), evaluation.metrics().macroF1());
            for (TrainingListener listener : stepListeners) {
                listener.onDev(loop.step, devMetrics);
            }
            double value = devMetrics.get(config.metric().devKey());
            if (config.metric().improves(value, loop.best)) {
                loop.best = value;
                loop.bestEpoch = loop.epoch;
                loop.epochsSinceBest = 0;
                if (config.patience() > 0) {
                    loop.bestParameters = snapshot();
                }
            } else {
                loop.epochsSinceBest++;
                loop.stoppedEarly = config.patience() > 0 && loop.epochsSinceBest >= config.patience();
            }
        }
    }

    /** A copy of the prompt's and the head's parameters, by name. */
    private record Snapshot(Map<String, float[]> prompt, Map<String, float[]> head) {}

    private Snapshot snapshot() {
        Map<String, float[]> head = new LinkedHashMap<>();
        for (String name : classifier.headParameterNames()) {
            head.put(name, classifier.readHead(name));
        }
        return new Snapshot(classifier.prompt() == null ? Map.of()
                : classifier.prompt().readAll(classifier.prompt().parameterNames()), head);
    }

    private void restore(Snapshot snapshot) {
        if (classifier.prompt() != null) {
            snapshot.prompt().forEach(classifier.prompt()::write);
        }
        snapshot.head().forEach(classifier::writeHead);
    }

    /** The classifier being trained (borrowed). */
    public PromptClassifier classifier() {
        return classifier;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            if (nativeTrainer != null) {
                nativeTrainer.close();
            }
        }
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
