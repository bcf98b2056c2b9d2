package io.ptune.nativebridge;

import java.util.List;

/**
 * The native state of one prompt method in front of one {@link NativeModel}: named fp32
 * parameters (PEFT's module names where PEFT has them), each trainable or frozen with its own
 * learning rate. Created with PyTorch's default initialisation; write parameters to initialise
 * or load them.
 *
 * <p>Thread-safe: reads (parameters, and the model's calls with this prompt) run concurrently;
 * writes, {@link #setTrainable}, {@link #unfreezeTopLayers} and training steps have the prompt to
 * themselves while they run. The native prompt keeps its model's weights alive, so its parameters
 * stay readable after the model is closed; {@link #close} waits for the calls in flight, after
 * which every call throws {@link IllegalStateException}.
 */
public final class NativePrompt implements AutoCloseable {
    private final PtuneNative.PromptModel handle;
    private final HandleGuard guard;
    private final NativeModel model;
    private final PromptSpecOptions spec;
    private final NamedParameters parameters;
    private final int numVirtualTokens;

    /**
     * @param blockSizes composite prompt blocks (prompt tuning only), named "block.0", "block.1",
     *     ...; null or empty for a single block named "embedding"
     */
    public NativePrompt(NativeModel model, PromptSpecOptions spec, long[] blockSizes) {
        NativeCalls.ensureLoaded();
        this.model = model;
        this.spec = spec;
        try (PtuneNative.PromptSpec s = new PtuneNative.PromptSpec()) {
            s.method(spec.method().ordinal())
                    .num_virtual_tokens(spec.numVirtualTokens())
                    .encoder_type(spec.encoderType().ordinal())
                    .encoder_hidden_size(spec.encoderHiddenSize())
                    .encoder_num_layers(spec.encoderNumLayers())
                    .encoder_dropout(spec.encoderDropout())
                    .prefix_projection(spec.prefixProjection())
                    .seed(spec.seed());
            long[] blocks = blockSizes == null || blockSizes.length == 0 ? null : blockSizes;
            int n = blocks == null ? 0 : blocks.length;
            this.handle = NativeCalls.call(() -> new PtuneNative.PromptModel(model.handle(), s, blocks, n),
                    model.guard().shared());
        }
        this.numVirtualTokens = Math.toIntExact(handle.numVirtualTokens());
        this.guard = new HandleGuard(HandleGuard.Kind.PROMPT, "prompt (" + spec.method().name().toLowerCase(
                java.util.Locale.ROOT).replace('_', '-') + ", " + numVirtualTokens + " virtual tokens)",
                "create or load it again");
        this.parameters = new NamedParameters(parameterAccess(handle), "parameter", guard);
    }

    private static NamedParameters.Access parameterAccess(PtuneNative.PromptModel handle) {
        return NamedParameters.Access.of(handle::numParameters, handle::parameterName, handle::parameterShape,
                handle::parameterNumel, handle::readParameter, handle::writeParameter);
    }

    public PromptSpecOptions spec() {
        return spec;
    }

    public NativeModel model() {
        return model;
    }

    /** The handle, for a call that holds {@link #guard}. */
    PtuneNative.PromptModel handle() {
        return handle;
    }

    HandleGuard guard() {
        return guard;
    }

    /** Whether {@link #close} was called. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    public int numVirtualTokens() {
        guard.ensureOpen();
        return numVirtualTokens;
    }

    /**
     * Virtual positions that appear in logits (0 for prefix tuning, whose prefix lives in the cache;
     * ptune::Model::inputVirtualTokens).
     */
    public int inputVirtualTokens() {
        guard.ensureOpen();
        return spec.method() == PromptSpecOptions.Method.PREFIX_TUNING ? 0 : numVirtualTokens;
    }

    /** Parameter names in creation order (method parameters, then unfrozen layers). */
    public List<String> parameterNames() {
        return parameters.names();
    }

    public long[] shape(String name) {
        return parameters.shape(name);
    }

    /** The number of values parameter {@code name} holds. */
    public int numel(String name) {
        return parameters.numel(name);
    }

    public float[] read(String name) {
        return parameters.read(name);
    }

    public void write(String name, float[] values) {
        parameters.write(name, values);
    }

    /** learningRate 0 = the trainer's base rate. */
    public void setTrainable(String name, boolean trainable, double learningRate) {
        NativeCalls.run(() -> handle.setTrainable(name, trainable, learningRate), guard.exclusive());
    }

    public boolean isTrainable(String name) {
        return NativeCalls.call(() -> handle.isTrainable(name), guard.shared());
    }

    public long trainableParameterCount() {
        return NativeCalls.call(handle::trainableParameterCount, guard.shared());
    }

    /**
     * Two-stage training: the top {@code layers} transformer layers become trainable copies owned
     * by this prompt (the model's weights, and other prompts on it, are not touched).
     */
    public void unfreezeTopLayers(int layers, double learningRate) {
        NativeCalls.run(() -> handle.unfreezeTopLayers(layers, learningRate), guard.exclusive());
    }

    /** PEFT's {@code prompt_embeddings}: (P, C), or (P, 2·layers·kv_dim) for prefix tuning. */
    public float[] peftEmbeddings() {
        return NativeCalls.call(() -> {
            float[] out = new float[Math.toIntExact(handle.peftEmbeddingsNumel())];
            handle.exportPeftEmbeddings(out);
            return out;
        }, guard.shared());
    }

    /** Frees the parameters (the model's weights too, when it was closed first); idempotent. */
    @Override
    public void close() {
        guard.close(handle::close);
    }
}
