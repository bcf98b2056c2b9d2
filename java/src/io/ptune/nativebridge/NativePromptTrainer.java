package io.ptune.nativebridge;

import io.ptune.PtuneException;

/**
 * Trains the trainable parameters of a {@link NativePrompt} (and of a {@link NativeClassifier})
 * in front of a frozen {@link NativeModel}; holds the AdamW moments and step counters natively.
 *
 * <p>A training step changes only the prompt's (and head's) parameters and this trainer's state,
 * never the model's weights (they are frozen; layers unfrozen for a second stage are the prompt's
 * own copies), so other threads may compute with the same model, and other prompts, meanwhile.
 * A step has its prompt, head and trainer to itself: a call on the same prompt from another thread
 * waits for it. Model, prompt and classifier must stay open: a step after one of them was closed
 * throws {@link IllegalStateException} naming it, as does any call after {@link #close}.
 */
public final class NativePromptTrainer implements AutoCloseable {
    private final PtuneNative.PromptTrainer handle;
    private final HandleGuard guard = new HandleGuard(HandleGuard.Kind.TRAINER, "native trainer",
            "create a new trainer");
    private final NativeModel model;
    private final NativePrompt prompt;
    private final NativeClassifier classifier;

    /**
     * A trainer of {@code prompt}'s trainable parameters (the prompt is borrowed: close it after
     * the trainer). Moments start at zero, the step counter at 0.
     */
    public NativePromptTrainer(NativeModel model, NativePrompt prompt, OptimizerOptions options) {
        NativeCalls.ensureLoaded();
        this.model = model;
        this.prompt = prompt;
        this.classifier = null;
        try (PtuneNative.TrainOptions o = trainOptions(options, ClassLossOptions.CROSS_ENTROPY)) {
            this.handle = NativeCalls.call(() -> new PtuneNative.PromptTrainer(model.handle(), prompt.handle(), o),
                    model.guard().shared(), prompt.guard().shared());
        }
    }

    /**
     * A classification trainer of {@code prompt}'s (may be null: the head alone) and
     * {@code classifier}'s trainable parameters under {@code loss} (both borrowed).
     */
    public NativePromptTrainer(NativeModel model, NativePrompt prompt, NativeClassifier classifier,
            OptimizerOptions options, ClassLossOptions loss) {
        NativeCalls.ensureLoaded();
        this.model = model;
        this.prompt = prompt;
        this.classifier = classifier;
        try (PtuneNative.TrainOptions o = trainOptions(options, loss)) {
            PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
            this.handle = NativeCalls.call(() -> new PtuneNative.PromptTrainer(model.handle(), p, classifier.handle(), o),
                    model.guard().shared(), classifier.guard().shared(), prompt == null ? null : prompt.guard().shared());
        }
        if (loss.classWeights() != null) {
            double[] weights = loss.classWeights();
            try {
                NativeCalls.run(() -> handle.setClassWeights(weights, weights.length), guard.exclusive());
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }
    }

    private static PtuneNative.TrainOptions trainOptions(OptimizerOptions options, ClassLossOptions loss) {
        PtuneNative.TrainOptions o = new PtuneNative.TrainOptions();
        o.learning_rate(options.learningRate())
                .weight_decay(options.weightDecay())
                .adam_beta1(options.beta1())
                .adam_beta2(options.beta2())
                .adam_epsilon(options.epsilon())
                .max_grad_norm(options.maxGradNorm())
                .grad_accum(options.gradAccum())
                .total_steps(options.totalSteps())
                .warmup_steps(options.warmupSteps())
                .schedule(options.schedule().ordinal())
                .loss_averaging(options.lossAveraging().ordinal())
                .class_loss(loss.kind().ordinal())
                .focal_gamma(loss.focalGamma())
                .label_smoothing(loss.labelSmoothing());
        return o;
    }

    /**
     * Classification: one micro-batch of B examples with class labels (B); slots (B) for
     * verbalizers (null for the linear head); tokenTypes (B, T) or null.
     */
    public MicroStepResult trainClassBatch(long[] ids, long[] mask, long[] tokenTypes, long[] slots, long[] labels,
            int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        NativeCalls.requireLength("labels", labels, B);
        try (PtuneNative.StepStats s = NativeCalls.call(
                () -> handle.trainClassBatch(ids, mask, tokenTypes, slots, labels, B, T), stepUses())) {
            return new MicroStepResult(
                    s.loss(), s.label_tokens(), s.optimizer_stepped(), s.grad_norm(), s.learning_rate(), s.optimizer_step(),
                    s.cycle_dropped());
        }
    }

    public NativePrompt nativePrompt() {
        return prompt;
    }

    /** Whether {@link #close} was called. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    /** A step: the model shared, the prompt, head and trainer exclusive (their parameters change). */
    private HandleGuard.Use[] stepUses() {
        return new HandleGuard.Use[] {model.guard().shared(), classifier == null ? null : classifier.guard().exclusive(),
                prompt == null ? null : prompt.guard().exclusive(), guard.exclusive()};
    }

    /** A call that reads the prompt and head and uses (and may change) the trainer's own state. */
    private HandleGuard.Use[] readUses() {
        return new HandleGuard.Use[] {classifier == null ? null : classifier.guard().shared(),
                prompt == null ? null : prompt.guard().shared(), guard.exclusive()};
    }

    /** Forward, loss, backward and accumulation; every gradAccum calls also clip, AdamW, schedule. */
    public MicroStepResult trainMicroBatch(long[] ids, long[] mask, long[] labels, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        NativeCalls.requireLength("labels", labels, (long) B * T);
        try (PtuneNative.StepStats s = NativeCalls.call(() -> handle.trainMicroBatch(ids, mask, labels, B, T),
                stepUses())) {
            return new MicroStepResult(
                    s.loss(), s.label_tokens(), s.optimizer_stepped(), s.grad_norm(), s.learning_rate(), s.optimizer_step(),
                    s.cycle_dropped());
        }
    }

    /** Loss without gradients (dropout off). */
    public EvalResult evaluate(long[] ids, long[] mask, long[] labels, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        NativeCalls.requireLength("labels", labels, (long) B * T);
        try (PtuneNative.EvalStats s = NativeCalls.call(() -> handle.evaluate(ids, mask, labels, B, T),
                model.guard().shared(), prompt == null ? null : prompt.guard().shared(), guard.shared())) {
            return new EvalResult(s.loss_sum(), s.label_tokens());
        }
    }

    /** AdamW's first and second moments of parameter {@code name}: {exp_avg, exp_avg_sq}. */
    public float[][] readMoments(String name) {
        int numel = numel(name);
        float[] expAvg = new float[numel];
        float[] expAvgSq = new float[numel];
        NativeCalls.run(() -> handle.readMoments(name, expAvg, expAvgSq), readUses());
        return new float[][] {expAvg, expAvgSq};
    }

    /** Replaces the moments of {@code name} (a checkpoint being restored). */
    public void writeMoments(String name, float[] expAvg, float[] expAvgSq) {
        int numel = numel(name);
        if (expAvg == null || expAvgSq == null || expAvg.length != numel || expAvgSq.length != numel) {
            throw new PtuneException("the AdamW moments of " + name + " must hold " + numel + " values each, got "
                    + (expAvg == null ? "null" : expAvg.length) + " and " + (expAvgSq == null ? "null" : expAvgSq.length));
        }
        NativeCalls.run(() -> handle.writeMoments(name, expAvg, expAvgSq), readUses());
    }

    private int numel(String name) {
        return classifier != null && classifier.hasParameter(name) ? classifier.numel(name) : prompt.numel(name);
    }

    /** Optimizer steps taken so far (the schedule's position). */
    public long optimizerStep() {
        return NativeCalls.call(handle::optimizerStep, guard.shared());
    }

    /**
     * Continues from {@code step} optimizer steps: the schedule, the micro-step count and every
     * parameter's bias correction; a half-accumulated gradient is dropped.
     */
    public void setOptimizerStep(long step) {
        // Drops a half-accumulated gradient of the prompt's and head's parameters: theirs to change.
        NativeCalls.run(() -> handle.setOptimizerStep(step), classifier == null ? null : classifier.guard().exclusive(),
                prompt == null ? null : prompt.guard().exclusive(), guard.exclusive());
    }

    /** Frees the moments and counters (not the prompt or head, which are borrowed); idempotent. */
    @Override
    public void close() {
        guard.close(handle::close);
    }
}
