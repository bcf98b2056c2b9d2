package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.model.Model;
import io.ptune.model.ModelPrompt;
import io.ptune.model.Architecture;
import io.ptune.nativebridge.NativePrompt;
import io.ptune.nativebridge.PromptSpecOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The parameters of one prompt method in front of one {@link Model}, held by the native core:
 * named fp32 tensors (PEFT's module names where PEFT has them: {@code embedding},
 * {@code mlp_head.0.weight}, {@code lstm_head.weight_ih_l0}, {@code transform.0.weight},
 * {@code generator.0.weight}, composite blocks {@code block.0}, {@code block.1}, …, and after
 * {@link #unfreezeTopLayers} the layer weights as named in the checkpoint), each trainable or
 * frozen with its own learning rate. Owns native memory; close it when done. The model is
 * borrowed and must stay open to compute with the prompt; a prompt whose model was closed keeps
 * the model's native weights alive until it is closed itself, its parameters stay readable, and
 * whatever would run the model throws {@link IllegalStateException}.
 *
 * <p>Thread-safe: several threads may generate or compute logits with one prompt at once; a call
 * that changes it (writing a parameter, a training step) waits for them and they for it. After
 * {@link #close} (idempotent) every method that needs the parameters throws
 * {@link IllegalStateException}.
 *
 * <p>Create one with {@link #create} (initialised as the config says), load one with
 * {@code PromptAdapter.load}, or wrap fixed values with {@link #fixed}.
 */
public final class PromptModule implements ModelPrompt, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PromptModule.class);

    /** Parameter names of unfrozen transformer layers start with this. */
    /**
     * Checkpoint names of transformer layer weights, whose group 1 is the layer index: Llama's
     * {@code model.layers.<i>.}, GPT-2's and BLOOM's {@code [transformer.]h.<i>.}, BERT's
     * {@code [bert.]encoder.layer.<i>.}. No prompt-method parameter name has this shape.
     */
    public static final Pattern LAYER_WEIGHT = Pattern.compile("(?:.*\\.)?(?:layers|h|layer)\\.(\\d+)\\..+");

    private final Model model;
    private final PromptMethodConfig config;
    private final NativePrompt handle;
    private volatile int unfrozenLayers;
    private volatile double layerLearningRate;
    private volatile boolean closed;

    private PromptModule(Model model, PromptMethodConfig config, NativePrompt handle) {
        this.model = model;
        this.config = config;
        this.handle = handle;
    }

    /**
     * New parameters for {@code config} in front of {@code model}, initialised: input-level
     * prompts (and each composite block) as their {@link PromptInitSpec} says, encoder / generator
     * / prefix weights with PyTorch's default initialisation seeded by {@code config.seed()}.
     * Every parameter is trainable except frozen composite blocks.
     *
     * @throws InvalidConfigException if an init cannot be applied (e.g. FROM_ADAPTER of another shape)
     */
    public static PromptModule create(Model model, PromptMethodConfig config) {
        PromptModule module = uninitialised(model, config);
        try {
            module.initialise();
            return module;
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    /**
     * Parameters for {@code config} with the native default initialisation only (no
     * {@link PromptInitSpec} applied, composite blocks all trainable): the starting point for
     * loading saved values.
     */
    public static PromptModule uninitialised(Model model, PromptMethodConfig config) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(config, "config");
        PromptSpecOptions spec = nativeSpec(config, model.architecture());
        long[] blocks = null;
        if (config instanceof CompositePromptConfig composite) {
            blocks = composite.blocks().stream().mapToLong(PromptBlock::numVirtualTokens).toArray();
        }
        if (config instanceof PTuningConfig p && p.encoderType() == PromptEncoderType.MLP
                && p.encoderNumLayers() != PTuningConfig.DEFAULT_ENCODER_NUM_LAYERS) {
            LOG.warn("encoderNumLayers {} is ignored for the MLP encoder, which has PEFT's fixed layers"
                    + " (as PEFT does)", p.encoderNumLayers());
        }
        return new PromptModule(model, config, new NativePrompt(model.nativeModel(), spec, blocks));
    }

    /** A frozen prompt-tuning prompt holding {@code prompt}'s values (for inference). */
    public static PromptModule fixed(Model model, SoftPrompt prompt) {
        model.checkPromptWidth(prompt.dim());
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(prompt.numVirtualTokens()).build();
        PromptModule module = uninitialised(model, config);
        try {
            module.write("embedding", prompt.values());
            module.freeze();
            return module;
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    /** The native shape of a method config for this architecture (defaults resolved as PEFT does). */
    static PromptSpecOptions nativeSpec(PromptMethodConfig config, Architecture arch) {
        int n = config.numVirtualTokens();
        if (config instanceof PromptTuningConfig || config instanceof CompositePromptConfig) {
            return new PromptSpecOptions(PromptSpecOptions.Method.PROMPT_TUNING, n, PromptSpecOptions.EncoderType.MLP,
                    0, 0, 0.0, false, config.seed());
        } else if (config instanceof PTuningConfig p) {
            return new PromptSpecOptions(PromptSpecOptions.Method.P_TUNING, n,
                    p.encoderType() == PromptEncoderType.LSTM ? PromptSpecOptions.EncoderType.LSTM
                            : PromptSpecOptions.EncoderType.MLP,
                    p.resolvedEncoderHiddenSize(arch.hiddenSize()), p.encoderNumLayers(), p.encoderDropout(), false,
                    p.seed());
        } else if (config instanceof PrefixTuningConfig p) {
            return new PromptSpecOptions(PromptSpecOptions.Method.PREFIX_TUNING, n, PromptSpecOptions.EncoderType.MLP,
                    p.resolvedEncoderHiddenSize(prefixTokenDim(arch)), 0, 0.0, p.prefixProjection(), p.seed());
        } else if (config instanceof DynamicPromptConfig d) {
            return new PromptSpecOptions(PromptSpecOptions.Method.DYNAMIC, n, PromptSpecOptions.EncoderType.MLP,
                    d.resolvedGeneratorHiddenSize(arch.hiddenSize()), 0, 0.0, false, d.seed());
        }
        throw new IllegalArgumentException("unknown prompt config " + config.getClass().getName());
    }

    /**
     * PEFT's prefix {@code token_dim}: {@code head_dim · num_key_value_heads} (the hidden size on
     * models without grouped-query attention).
     */
    public static int prefixTokenDim(Architecture arch) {
        return arch.headDim() * arch.numKvHeads();
    }

    private void initialise() {
        int dim = model.architecture().hiddenSize();
        if (config instanceof PromptTuningConfig c) {
            write("embedding", PromptInitializer.initialValues(c.initialization(), c.numVirtualTokens(), c.seed(),
                    model, null));
        } else if (config instanceof PTuningConfig c) {
            write("embedding", PromptInitializer.initialValues(c.initialization(), c.numVirtualTokens(), c.seed(),
                    model, null));
        } else if (config instanceof DynamicPromptConfig c) {
            write("embedding", PromptInitializer.initialValues(c.initialization(), c.numVirtualTokens(), c.seed(),
                    model, null));
        } else if (config instanceof CompositePromptConfig c) {
            for (int i = 0; i < c.blocks().size(); i++) {
                PromptBlock block = c.blocks().get(i);
                float[] values;
                try {
                    values = PromptInitializer.initialValues(block.initialization(), block.numVirtualTokens(),
                            c.seed() + i, model, block.name());
                } catch (InvalidConfigException e) {
                    throw new InvalidConfigException("blocks", "block '" + block.name() + "': " + e.getMessage());
                }
                String name = blockParameterName(i);
                write(name, values);
                setTrainable(name, !block.frozen(), block.learningRate() == null ? 0 : block.learningRate());
            }
        }
        // Prefix tuning keeps PEFT's default init (nn.Embedding N(0, 1), nn.Linear uniform).
        LOG.debug("created {} prompt with {} virtual tokens (width {}), {} trainable parameters", config.method(),
                config.numVirtualTokens(), dim, trainableParameterCount());
    }

    /** The parameter name of composite block {@code i} ("embedding" when there is a single block). */
    public String blockParameterName(int i) {
        if (!(config instanceof CompositePromptConfig c)) {
            throw new IllegalStateException("only composite prompts have blocks");
        }
        Objects.checkIndex(i, c.blocks().size());
        return c.blocks().size() == 1 ? "embedding" : "block." + i;
    }

    public PromptMethodConfig config() {
        return config;
    }

    public PromptMethod method() {
        return config.method();
    }

    public Model model() {
        return model;
    }

    /** n: input virtual tokens, prefix positions, or the blocks' sum. */
    public int numVirtualTokens() {
        return config.numVirtualTokens();
    }

    /** Virtual positions that appear in logits: n for input-level methods, 0 for prefix tuning. */
    public int inputVirtualTokens() {
        ensureOpen();
        return handle.inputVirtualTokens();
    }

    /** Every parameter name: the method's, then the unfrozen layers'. */
    public List<String> parameterNames() {
        ensureOpen();
        return handle.parameterNames();
    }

    /** The method's own parameter names (without unfrozen layers). */
    public List<String> methodParameterNames() {
        return parameterNames().stream().filter(n -> !LAYER_WEIGHT.matcher(n).matches()).toList();
    }

    /** Names of the unfrozen layers' weights (empty before {@link #unfreezeTopLayers}). */
    public List<String> layerParameterNames() {
        return parameterNames().stream().filter(n -> LAYER_WEIGHT.matcher(n).matches()).toList();
    }

    public long[] shape(String name) {
        ensureOpen();
        return handle.shape(name);
    }

    /** A copy of a parameter's values, row-major. */
    public float[] read(String name) {
        ensureOpen();
        return handle.read(name);
    }

    /** Overwrites a parameter (same number of values; finite). */
    public void write(String name, float[] values) {
        ensureOpen();
        handle.write(name, values);
    }

    /** learningRate 0 (or frozen) = the trainer's base rate. */
    public void setTrainable(String name, boolean trainable, double learningRate) {
        ensureOpen();
        handle.setTrainable(name, trainable, learningRate);
    }

    public boolean isTrainable(String name) {
        ensureOpen();
        return handle.isTrainable(name);
    }

    /** Freezes every parameter (inference). */
    public void freeze() {
        for (String name : parameterNames()) {
            setTrainable(name, false, 0);
        }
    }

    /** The number of trainable values. */
    public long trainableParameterCount() {
        ensureOpen();
        return handle.trainableParameterCount();
    }

    /**
     * Two-stage training: the top {@code layers} transformer layers become trainable copies at
     * {@code learningRate} (the model's own weights and files are untouched; other prompts on the
     * same model do not see the change). Once per module.
     */
    public synchronized void unfreezeTopLayers(int layers, double learningRate) {
        ensureOpen();
        int total = model.architecture().numLayers();
        if (layers < 1 || layers > total) {
            throw new InvalidConfigException("stage2Layers", "must lie in [1, " + total + "] (the model's layers),"
                    + " got " + layers);
        }
        if (!(learningRate > 0) || !Double.isFinite(learningRate)) {
            throw new InvalidConfigException("stage2LearningRate", "must be a positive number, got " + learningRate);
        }
        if (unfrozenLayers > 0) {
            throw new IllegalStateException("the top " + unfrozenLayers + " layers are unfrozen already");
        }
        handle.unfreezeTopLayers(layers, learningRate);
        unfrozenLayers = layers;
        layerLearningRate = learningRate;
    }

    /** How many top layers are unfrozen (0 = none). */
    public int unfrozenLayers() {
        return unfrozenLayers;
    }

    /** The learning rate the layers were unfrozen at (0 when none are). */
    public double layerLearningRate() {
        return layerLearningRate;
    }

    /**
     * What PEFT saves as {@code prompt_embeddings}: the (n, C) input prompt (P-tuning: the
     * encoder's output; composite: the blocks concatenated), or the (n, 2·layers·token_dim)
     * prefix (after the projection). Dynamic prompts have none.
     */
    public float[] peftEmbeddings() {
        ensureOpen();
        if (config instanceof DynamicPromptConfig) {
            throw new PtuneException("a dynamic prompt has no fixed prompt_embeddings: it is computed per input");
        }
        return handle.peftEmbeddings();
    }

    /** The shape of {@link #peftEmbeddings()}. */
    public long[] peftEmbeddingsShape() {
        Architecture arch = model.architecture();
        if (config instanceof PrefixTuningConfig) {
            return new long[] {numVirtualTokens(), 2L * arch.numLayers() * prefixTokenDim(arch)};
        }
        return new long[] {numVirtualTokens(), arch.hiddenSize()};
    }

    /**
     * The fixed input prompt as a value: prompt tuning, composite (concatenated) and P-tuning (the
     * encoder's output).
     *
     * @throws PtuneException for prefix tuning and dynamic prompts, which have no such prompt
     */
    public SoftPrompt inputPrompt() {
        if (config instanceof PrefixTuningConfig || config instanceof DynamicPromptConfig) {
            throw new PtuneException(config.method().cliName() + " has no fixed input prompt"
                    + (config instanceof PrefixTuningConfig ? " (its prefix lives in every layer's keys and values)"
                            : " (it is computed per input)"));
        }
        return new SoftPrompt(numVirtualTokens(), model.architecture().hiddenSize(), peftEmbeddings());
    }

    /** Parameter name -> values, for the named parameters (copies). */
    public java.util.Map<String, float[]> readAll(List<String> names) {
        java.util.Map<String, float[]> out = new java.util.LinkedHashMap<>();
        for (String name : names) {
            out.put(name, read(name));
        }
        return out;
    }

    /** The native handle, for the training and inference packages. */
    public NativePrompt nativePrompt() {
        ensureOpen();
        return handle;
    }

    /** Frees the parameters after the calls in flight have returned; idempotent. */
    @Override
    public void close() {
        closed = true;
        handle.close();
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("prompt (" + config.method().cliName() + ", " + numVirtualTokens()
                    + " virtual tokens) is closed; create or load it again");
        }
    }

    @Override
    public String toString() {
        List<String> names = closed ? new ArrayList<>() : methodParameterNames();
        return "PromptModule[" + config.method().cliName() + ", n=" + numVirtualTokens() + ", parameters=" + names
                + (unfrozenLayers > 0 ? ", top " + unfrozenLayers + " layers unfrozen" : "") + "]";
    }
}
