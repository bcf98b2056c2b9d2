package io.ptune.nativebridge;

/**
 * A soft prompt (P, C) being trained in front of a frozen {@link NativeModel}: the prompt, its
 * gradient accumulator and the AdamW moments live in native memory. The model must stay open
 * while the trainer is used.
 */
public final class NativePromptTrainer implements AutoCloseable {
    private final PtuneNative.PromptTrainer handle;
    private final int numVirtualTokens;
    private final int hiddenSize;

    public NativePromptTrainer(NativeModel model, float[] initPrompt, int P, OptimizerOptions options) {
        NativeCalls.ensureLoaded();
        if (P <= 0) {
            throw new io.ptune.PtuneException("num_virtual_tokens must be positive, got " + P);
        }
        NativeCalls.requirePrompt(initPrompt, P, model.hiddenSize());
        this.numVirtualTokens = P;
        this.hiddenSize = model.hiddenSize();
        try (PtuneNative.TrainOptions o = new PtuneNative.TrainOptions()) {
            o.learning_rate(options.learningRate())
                    .weight_decay(options.weightDecay())
                    .adam_beta1(options.beta1())
                    .adam_beta2(options.beta2())
                    .adam_epsilon(options.epsilon())
                    .max_grad_norm(options.maxGradNorm())
                    .grad_accum(options.gradAccum())
                    .total_steps(options.totalSteps())
                    .warmup_steps(options.warmupSteps())
                    .schedule(options.schedule().ordinal());
            this.handle = NativeCalls.call(() -> new PtuneNative.PromptTrainer(model.handle(), initPrompt, P, o));
        }
    }

    /** Forward, loss, backward and accumulation; every gradAccum calls also clip, AdamW, schedule. */
    public MicroStepResult trainMicroBatch(long[] ids, long[] mask, long[] labels, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        NativeCalls.requireLength("labels", labels, (long) B * T);
        try (PtuneNative.StepStats s = NativeCalls.call(() -> handle.trainMicroBatch(ids, mask, labels, B, T))) {
            return new MicroStepResult(
                    s.loss(), s.label_tokens(), s.optimizer_stepped(), s.grad_norm(), s.learning_rate(), s.optimizer_step());
        }
    }

    /** Loss without gradients. */
    public EvalResult evaluate(long[] ids, long[] mask, long[] labels, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        NativeCalls.requireLength("labels", labels, (long) B * T);
        try (PtuneNative.EvalStats s = NativeCalls.call(() -> handle.evaluate(ids, mask, labels, B, T))) {
            return new EvalResult(s.loss_sum(), s.label_tokens());
        }
    }

    /** The current prompt, (P, C) row-major. */
    public float[] prompt() {
        float[] out = new float[numVirtualTokens * hiddenSize];
        NativeCalls.run(() -> handle.readPrompt(out));
        return out;
    }

    /** AdamW moments {exp_avg, exp_avg_sq}, each (P, C). */
    public float[][] moments() {
        float[] avg = new float[numVirtualTokens * hiddenSize];
        float[] avgSq = new float[numVirtualTokens * hiddenSize];
        NativeCalls.run(() -> handle.readMoments(avg, avgSq));
        return new float[][] {avg, avgSq};
    }

    /** Restores prompt, moments and the optimizer step counter from a checkpoint. */
    public void restore(float[] prompt, float[] expAvg, float[] expAvgSq, long step) {
        NativeCalls.requirePrompt(prompt, numVirtualTokens, hiddenSize);
        NativeCalls.requirePrompt(expAvg, numVirtualTokens, hiddenSize);
        NativeCalls.requirePrompt(expAvgSq, numVirtualTokens, hiddenSize);
        NativeCalls.run(() -> handle.restore(prompt, expAvg, expAvgSq, step));
    }

    @Override
    public void close() {
        handle.close();
    }
}
