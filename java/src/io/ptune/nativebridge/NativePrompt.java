package io.ptune.nativebridge;

import java.util.ArrayList;
import java.util.List;

/**
 * The native state of one prompt method in front of one {@link NativeModel}: named fp32
 * parameters (PEFT's module names where PEFT has them), each trainable or frozen with its own
 * learning rate. Created with PyTorch's default initialisation; write parameters to initialise
 * or load them. The model must stay open while the prompt is used.
 */
public final class NativePrompt implements AutoCloseable {
    private final PtuneNative.PromptModel handle;
    private final NativeModel model;
    private final PromptSpecOptions spec;

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
            this.handle = NativeCalls.call(() -> new PtuneNative.PromptModel(model.handle(), s, blocks, n));
        }
    }

    public PromptSpecOptions spec() {
        return spec;
    }

    public NativeModel model() {
        return model;
    }

    PtuneNative.PromptModel handle() {
        return handle;
    }

    public int numVirtualTokens() {
        return Math.toIntExact(handle.numVirtualTokens());
    }

    /** Virtual positions that appear in logits (0 for prefix tuning, whose prefix lives in the cache). */
    public int inputVirtualTokens() {
        return Math.toIntExact(NativeCalls.call(() -> model.handle().inputVirtualTokens(handle)));
    }

    /** Parameter names in creation order (method parameters, then unfrozen layers). */
    public List<String> parameterNames() {
        long n = handle.numParameters();
        List<String> names = new ArrayList<>();
        for (long i = 0; i < n; i++) {
            long index = i;
            names.add(NativeCalls.call(() -> handle.parameterName(index).getString()));
        }
        return List.copyOf(names);
    }

    public long[] shape(String name) {
        long[] dims = new long[4];
        int rank = Math.toIntExact(NativeCalls.call(() -> handle.parameterShape(name, dims)));
        return java.util.Arrays.copyOf(dims, rank);
    }

    /** The number of values parameter {@code name} holds. */
    public int numel(String name) {
        return Math.toIntExact(NativeCalls.call(() -> handle.parameterNumel(name)));
    }

    public float[] read(String name) {
        float[] out = new float[numel(name)];
        NativeCalls.run(() -> handle.readParameter(name, out));
        return out;
    }

    public void write(String name, float[] values) {
        long numel = NativeCalls.call(() -> handle.parameterNumel(name));
        if (values == null || values.length != numel) {
            throw new io.ptune.PtuneException("parameter '" + name + "' holds " + numel + " values, got "
                    + (values == null ? "null" : values.length));
        }
        NativeCalls.run(() -> handle.writeParameter(name, values));
    }

    /** learningRate 0 = the trainer's base rate. */
    public void setTrainable(String name, boolean trainable, double learningRate) {
        NativeCalls.run(() -> handle.setTrainable(name, trainable, learningRate));
    }

    public boolean isTrainable(String name) {
        return NativeCalls.call(() -> handle.isTrainable(name));
    }

    public long trainableParameterCount() {
        return NativeCalls.call(handle::trainableParameterCount);
    }

    /** Two-stage training: the top {@code layers} transformer layers become trainable copies. */
    public void unfreezeTopLayers(int layers, double learningRate) {
        NativeCalls.run(() -> handle.unfreezeTopLayers(layers, learningRate));
    }

    /** PEFT's {@code prompt_embeddings}: (P, C), or (P, 2·layers·kv_dim) for prefix tuning. */
    public float[] peftEmbeddings() {
        float[] out = new float[Math.toIntExact(NativeCalls.call(handle::peftEmbeddingsNumel))];
        NativeCalls.run(() -> handle.exportPeftEmbeddings(out));
        return out;
    }

    @Override
    public void close() {
        handle.close();
    }
}
