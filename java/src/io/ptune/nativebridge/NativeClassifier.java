package io.ptune.nativebridge;

import io.ptune.PtuneException;
import java.util.List;

/**
 * A native classification head (a linear head, a verbalizer or a soft verbalizer) in front of a
 * frozen {@link NativeModel}, optionally behind a {@link NativePrompt}.
 *
 * <p>Thread-safe: {@link #scores} runs concurrently; writes, calibration and training steps have
 * the head to themselves. {@link #close} waits for the calls in flight, after which every call
 * throws {@link IllegalStateException}; scoring after the model was closed throws too.
 */
public final class NativeClassifier implements AutoCloseable {
    private final PtuneNative.Classifier handle;
    private final HandleGuard guard;
    private final NativeModel model;
    private final ClassifierSpecOptions spec;
    private final NamedParameters parameters;
    private final int numClasses;

    /**
     * @param wordClass the class of each label word (verbalizers), or null for the linear head
     * @param wordOffsets word i's tokens are wordTokens[wordOffsets[i] .. wordOffsets[i + 1])
     */
    public NativeClassifier(NativeModel model, ClassifierSpecOptions spec, long[] wordClass, long[] wordOffsets,
            long[] wordTokens) {
        NativeCalls.ensureLoaded();
        this.model = model;
        this.spec = spec;
        int words = wordClass == null ? 0 : wordClass.length;
        if (words > 0 && (wordOffsets == null || wordOffsets.length != words + 1 || wordTokens == null)) {
            throw new PtuneException("label words: " + words + " words need " + (words + 1) + " offsets and tokens");
        }
        try (PtuneNative.ClassifierSpec s = new PtuneNative.ClassifierSpec()) {
            s.head(spec.head().ordinal())
                    .num_classes(spec.numClasses())
                    .pooling(spec.pooling().ordinal())
                    .head_bias(spec.headBias())
                    .multi_token(spec.multiToken().ordinal())
                    .seed(spec.seed());
            this.handle = NativeCalls.call(() -> new PtuneNative.Classifier(model.handle(), s, wordClass, wordOffsets,
                    wordTokens, words), model.guard().shared());
        }
        this.numClasses = Math.toIntExact(handle.numClasses());
        this.guard = new HandleGuard(HandleGuard.Kind.CLASSIFIER, "classification head (" + spec.head().name()
                .toLowerCase(java.util.Locale.ROOT) + ", " + numClasses + " classes)", "create or load the classifier again");
        this.parameters = new NamedParameters(parameterAccess(handle), "classifier parameter", guard);
    }

    public ClassifierSpecOptions spec() {
        return spec;
    }

    /** The handle, for a call that holds {@link #guard}. */
    PtuneNative.Classifier handle() {
        return handle;
    }

    HandleGuard guard() {
        return guard;
    }

    /** Whether {@link #close} was called. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    public int numClasses() {
        guard.ensureOpen();
        return numClasses;
    }

    public List<String> parameterNames() {
        return parameters.names();
    }

    public boolean hasParameter(String name) {
        return parameterNames().contains(name);
    }

    public long[] shape(String name) {
        return parameters.shape(name);
    }

    public int numel(String name) {
        return parameters.numel(name);
    }

    public float[] read(String name) {
        return parameters.read(name);
    }

    public void write(String name, float[] values) {
        parameters.write(name, values);
    }

    private static NamedParameters.Access parameterAccess(PtuneNative.Classifier handle) {
        return NamedParameters.Access.of(handle::numParameters, handle::parameterName, handle::parameterShape,
                handle::parameterNumel, handle::readParameter, handle::writeParameter);
    }

    /**
     * Class scores (B, K), row-major: the linear head's logits or the verbalizer's aggregated
     * label-word log-probabilities. prompt may be null; slots (B) may be null for the linear head;
     * tokenTypes (B, T) may be null.
     */
    public float[] scores(NativePrompt prompt, long[] ids, long[] mask, long[] tokenTypes, long[] slots, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        if (slots != null) {
            NativeCalls.requireLength("slots", slots, B);
        }
        float[] out = new float[Math.multiplyExact(B, numClasses())];
        PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
        NativeCalls.run(() -> handle.scores(p, ids, mask, tokenTypes, slots, B, T, out), model.guard().shared(),
                guard.shared(), prompt == null ? null : prompt.guard().shared());
        return out;
    }

    /** Contextual calibration from content-free inputs (verbalizers). */
    public void calibrate(NativePrompt prompt, long[] ids, long[] mask, long[] slots, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("slots", slots, B);
        PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
        NativeCalls.run(() -> handle.calibrate(p, ids, mask, slots, B, T), model.guard().shared(), guard.exclusive(),
                prompt == null ? null : prompt.guard().shared());
    }

    public void clearCalibration() {
        NativeCalls.run(handle::clearCalibration, guard.exclusive());
    }

    /** Frees the head; idempotent. */
    @Override
    public void close() {
        guard.close(handle::close);
    }
}
