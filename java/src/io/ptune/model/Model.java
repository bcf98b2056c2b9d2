package io.ptune.model;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.PtuneException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.NativeModel;
import io.ptune.nativebridge.NativePrompt;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A frozen Hugging Face model of any family ptune reads (Llama, Mistral, Qwen2, GPT-2, BLOOM
 * decoders; BERT encoders): its architecture, its tokenizer and its weights in the native core.
 * Owns native memory; close it (try-with-resources) when done.
 *
 * <p>Everything that trains or generates with a prompt ({@code Trainer}, {@code Generator}) borrows
 * this model and never closes it.
 *
 * <h2>Threads</h2>
 * One model serves any number of threads at once: each can compute logits, hidden states and
 * generate (greedy or seeded sampling) with its own prompt, and gets exactly what the same call
 * made alone gives. The weights are frozen and only read; every call has its own activations, KV
 * cache and sampling generator. Training a prompt ({@code Trainer}) while other threads use the
 * model with other prompts is safe too: a step changes only that prompt's parameters, and a
 * second stage's unfrozen layers are copies owned by that prompt, so the model and every other
 * prompt see no change. One prompt, classifier or trainer may be shared as well: calls that
 * change it (a training step, writing a parameter) wait for the calls that read it, and the
 * reverse.
 *
 * <p>{@link #close} waits for the calls in flight; afterwards every method that needs the weights
 * throws {@link IllegalStateException} naming the model, and closing again does nothing. Prompts,
 * classifiers and trainers made from a closed model keep its native weights alive until they are
 * closed themselves (so nothing is ever freed under them): their own parameters stay readable,
 * and whatever would run the model throws.
 */
public final class Model implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Model.class);

    private final Path modelDir;
    private final Architecture architecture;
    private final Path tokenizerFile;
    private final NativeModel nativeModel;
    private final List<Long> configEosTokenIds;
    private final LoadOptions loadOptions;
    /** Loaded on first use (ids work on a folder without tokenizer files); written under this lock. */
    private volatile Tokenizer tokenizer;
    private volatile boolean closed;

    private Model(Path modelDir, Architecture architecture, Path tokenizerFile, NativeModel nativeModel,
            List<Long> eosTokenIds, LoadOptions loadOptions) {
        this.loadOptions = loadOptions;
        this.modelDir = modelDir;
        this.architecture = architecture;
        this.tokenizerFile = tokenizerFile;
        this.nativeModel = nativeModel;
        this.configEosTokenIds = List.copyOf(eosTokenIds);
    }

    /**
     * Loads a Hugging Face model directory ({@code config.json}, {@code generation_config.json}
     * (optional, for the end-of-sequence ids) and the safetensors weights; {@code tokenizer.json}
     * when text is first tokenised), or a BERT-family ONNX export ({@code .onnx} file) with the
     * {@code tokenizer.json} beside it (or {@code <name>-tokenizer.json}, as the langchain4j jars
     * name it).
     *
     * @throws ModelFormatException if the directory or one of its files is missing or malformed
     */
    public static Model load(Path path) {
        return load(path, null);
    }

    /**
     * As {@link #load(Path)}, with the tokenizer taken from {@code tokenizerFile} (a tokenizer.json)
     * instead of beside the model; null looks beside it.
     */
    public static Model load(Path path, Path tokenizerFile) {
        return load(path, tokenizerFile, LoadOptions.DEFAULT);
    }

    /**
     * As {@link #load(Path, Path)} on {@code options.device()} in {@code options.dtype()}: the frozen
     * weights are converted and moved there once, here.
     *
     * @throws io.ptune.PtuneException with one line naming {@code --device} when the device is not
     *     available (e.g. CUDA on a CPU-only build), or {@code --dtype} when the dtype is not supported
     *     there (fp16 on CPU)
     */
    public static Model load(Path path, Path tokenizerFile, LoadOptions options) {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(options, "options");
        if (Files.isRegularFile(path) && path.getFileName().toString().endsWith(".onnx")) {
            return loadOnnx(path, tokenizerFile, options);
        }
        Path modelDir = path;
        if (!Files.isDirectory(modelDir)) {
            throw new ModelFormatException("model directory " + modelDir + " does not exist or is"
                    + " not a directory; pass the folder that holds config.json, tokenizer.json and"
                    + " model.safetensors (what save_pretrained writes), or an .onnx file");
        }
        Architecture architecture = Architecture.fromConfigJson(modelDir.resolve("config.json"));
        if (!Files.isRegularFile(modelDir.resolve("model.safetensors"))
                && !Files.isRegularFile(modelDir.resolve("model.safetensors.index.json"))) {
            String hint = Files.exists(modelDir.resolve("pytorch_model.bin"))
                    ? "; only pytorch_model.bin was found: convert it with"
                            + " model.save_pretrained(dir, safe_serialization=True)"
                    : "";
            throw new ModelFormatException(modelDir + " has neither model.safetensors nor"
                    + " model.safetensors.index.json; ptune reads weights in safetensors format" + hint);
        }
        List<Long> eos = eosTokenIds(modelDir, architecture);
        NativeModel nativeModel = loadNative(modelDir, architecture, options);
        Path tokenizer = tokenizerFile != null ? tokenizerFile : modelDir.resolve("tokenizer.json");
        return checked(new Model(modelDir, architecture, tokenizer, nativeModel, eos, options));
    }

    /**
     * Loads a BERT-family encoder exported to ONNX (its initializers; the architecture is read from
     * the graph). No ONNX runtime is involved: ptune computes the encoder itself.
     *
     * @param tokenizerFile its tokenizer.json, or null to look beside the model ({@code tokenizer.json},
     *     else the one {@code *tokenizer.json} there)
     * @throws ModelFormatException if the file is not a BERT-family export ptune recognises
     */
    public static Model loadOnnx(Path onnxFile, Path tokenizerFile) {
        return loadOnnx(onnxFile, tokenizerFile, LoadOptions.DEFAULT);
    }

    /** As {@link #loadOnnx(Path, Path)} on a device in a compute dtype (see {@link LoadOptions}). */
    public static Model loadOnnx(Path onnxFile, Path tokenizerFile, LoadOptions options) {
        Objects.requireNonNull(onnxFile, "onnxFile");
        Objects.requireNonNull(options, "options");
        if (!Files.isRegularFile(onnxFile)) {
            throw new ModelFormatException(onnxFile + " does not exist or is not a file");
        }
        Path tokenizer = tokenizerFile != null ? tokenizerFile : tokenizerBeside(onnxFile);
        BertArchitecture architecture = BertArchitecture.fromSpec(NativeModel.describeOnnxEncoder(onnxFile));
        NativeModel nativeModel = loadNative(onnxFile, architecture, options);
        return checked(new Model(onnxFile, architecture, tokenizer, nativeModel, List.of(), options));
    }

    private static NativeModel loadNative(Path path, Architecture architecture, LoadOptions options) {
        return NativeModel.load(path, architecture.nativeSpec(), options.device().type().ordinal(),
                options.device().index(), options.dtype().ordinal());
    }

    /** Where the model computes and in which dtype. */
    public LoadOptions loadOptions() {
        return loadOptions;
    }

    private static Path tokenizerBeside(Path onnxFile) {
        Path dir = onnxFile.toAbsolutePath().getParent();
        Path plain = dir.resolve("tokenizer.json");
        if (Files.isRegularFile(plain)) {
            return plain;
        }
        try (var files = Files.list(dir)) {
            List<Path> candidates = files.filter(f -> f.getFileName().toString().endsWith("tokenizer.json")).toList();
            return candidates.size() == 1 ? candidates.get(0) : plain;
        } catch (java.io.IOException e) {
            return plain;
        }
    }

    /** Checks the native model against its architecture; closes it on failure. */
    private static Model checked(Model model) {
        NativeModel nativeModel = model.nativeModel;
        Architecture architecture = model.architecture;
        if (nativeModel.vocabSize() != architecture.vocabSize() || nativeModel.hiddenSize() != architecture.hiddenSize()
                || nativeModel.numLayers() != architecture.numLayers()) {
            model.close();
            throw new ModelFormatException(model.modelDir + ": the weights (vocab " + nativeModel.vocabSize()
                    + ", hidden " + nativeModel.hiddenSize() + ", layers " + nativeModel.numLayers()
                    + ") do not match config.json (vocab " + architecture.vocabSize() + ", hidden "
                    + architecture.hiddenSize() + ", layers " + architecture.numLayers() + ")");
        }
        LOG.info("loaded {} ({}, {} layers, hidden {}, vocab {}) on {} in {}", model.modelDir,
                architecture.modelType(), architecture.numLayers(), architecture.hiddenSize(), architecture.vocabSize(),
                model.loadOptions.device(), model.loadOptions.dtype());
        return model;
    }

    /**
     * The ids that end generation: {@code generation_config.json}'s {@code eos_token_id} when that
     * file has one (it is what transformers' {@code generate} uses), else config.json's.
     */
    private static List<Long> eosTokenIds(Path modelDir, Architecture architecture) {
        Path generationConfig = modelDir.resolve("generation_config.json");
        if (Files.isRegularFile(generationConfig)) {
            JsonNode root = JsonFiles.readObject(generationConfig, ModelFormatException::new, "");
            try {
                List<Long> ids = Architecture.tokenIdList(root, "eos_token_id");
                for (long id : ids) {
                    if (id < 0 || id >= architecture.vocabSize()) {
                        throw new ModelFormatException("eos_token_id " + id
                                + " is outside the vocabulary [0, " + architecture.vocabSize() + ")");
                    }
                }
                if (!ids.isEmpty()) {
                    return ids;
                }
            } catch (ModelFormatException e) {
                throw new ModelFormatException(generationConfig + ": " + e.getMessage(), e);
            }
        }
        return architecture.eosTokenIds();
    }

    /**
     * Logits of the LM head (decoders) or the MLM head (encoders that have one) for one sequence,
     * optionally behind a prompt of any method.
     *
     * @param prompt a prompt of this model (a {@code PromptModule}; for fixed values {@code
     *     PromptModule.fixed}), or null for the bare model
     * @param ids token ids, used as given (no special tokens are added)
     * @return {@code Pin + T} rows of {@code V} logits: the {@code Pin} input-level virtual
     *     positions first (n, or 0 for prefix tuning)
     * @throws IllegalStateException if the checkpoint has no LM / MLM head (a sentence-embedding
     *     encoder): use {@link #hiddenStates}
     */
    public float[][] logits(ModelPrompt prompt, long[] ids) {
        if (!nativeModel().hasLmHead()) {
            throw new IllegalStateException(modelDir + " (" + architecture.modelType() + ") has no LM or MLM head;"
                    + " use hiddenStates (ptune embed) for its final hidden states");
        }
        return rows(prompt, ids, null, architecture.vocabSize(), true);
    }

    /**
     * The final hidden states ({@code last_hidden_state}) of one sequence, optionally behind a
     * prompt of any method: {@code Pin + T} rows of {@code C} values, virtual positions first.
     *
     * @param tokenTypes BERT's segment ids (one per token), or null for all 0
     */
    public float[][] hiddenStates(ModelPrompt prompt, long[] ids, long[] tokenTypes) {
        return rows(prompt, ids, tokenTypes, architecture.hiddenSize(), false);
    }

    private float[][] rows(ModelPrompt prompt, long[] ids, long[] tokenTypes, int width, boolean logits) {
        ensureOpen();
        Objects.requireNonNull(ids, "ids");
        if (ids.length == 0) {
            throw new IllegalArgumentException("ids must not be empty");
        }
        checkTokenIds(ids);
        checkPromptModule(prompt);
        if (tokenTypes != null && tokenTypes.length != ids.length) {
            throw new IllegalArgumentException("token types: " + tokenTypes.length + " for " + ids.length + " tokens");
        }
        long[] mask = new long[ids.length];
        Arrays.fill(mask, 1L);
        int t = ids.length;
        int p = prompt == null ? 0 : prompt.inputVirtualTokens();
        NativePrompt nativePrompt = prompt == null ? null : prompt.nativePrompt();
        float[] flat = logits ? nativeModel.logits(nativePrompt, ids, mask, tokenTypes, 1, t)
                : nativeModel.hiddenStates(nativePrompt, ids, mask, tokenTypes, 1, t);
        int rows = p + t;
        if (flat.length != (long) rows * width) {
            throw new PtuneException("native output has " + flat.length + " values, expected " + rows + " x " + width);
        }
        float[][] out = new float[rows][];
        for (int r = 0; r < rows; r++) {
            out[r] = Arrays.copyOfRange(flat, r * width, (r + 1) * width);
        }
        return out;
    }

    /** Rejects a prompt created for another model (or closed). */
    public void checkPromptModule(ModelPrompt prompt) {
        if (prompt != null && prompt.model() != this) {
            throw new IllegalArgumentException("the prompt was created for another model instance ("
                    + prompt.model().modelDir() + "); create or load it with this model");
        }
    }

    /**
     * Embedding rows of {@code ids}, flattened {@code (n, C)} row-major.
     */
    public float[] embed(long[] ids) {
        ensureOpen();
        checkTokenIds(ids);
        return nativeModel.embed(ids);
    }

    /** Rejects a prompt width that does not fit this model. */
    public void checkPromptWidth(int dim) {
        if (dim != architecture.hiddenSize()) {
            throw new IllegalArgumentException("the soft prompt has dim " + dim
                    + " but the model's hidden_size is " + architecture.hiddenSize());
        }
    }

    /** Rejects ids outside the embedding table, which the native core cannot look up. */
    public void checkTokenIds(long[] ids) {
        int v = architecture.vocabSize();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= v) {
                throw new IllegalArgumentException("token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + v + ")");
            }
        }
    }

    public Path modelDir() {
        return modelDir;
    }

    public Architecture architecture() {
        return architecture;
    }

    /**
     * The model's tokenizer, loaded on first use (so that token ids work on a model folder without
     * tokenizer files).
     *
     * @throws ModelFormatException if tokenizer.json is missing or malformed
     */
    public synchronized Tokenizer tokenizer() {
        ensureOpen();
        if (tokenizer == null) {
            tokenizer = Tokenizer.load(tokenizerFile);
            if (tokenizer.vocabSize() > architecture.vocabSize()) {
                LOG.warn("{}: the tokenizer defines ids up to {} but the model has vocab_size {};"
                        + " texts using the extra tokens cannot be embedded", tokenizerFile, tokenizer.vocabSize() - 1,
                        architecture.vocabSize());
            }
        }
        return tokenizer;
    }

    /** Whether a tokenizer file is there (without loading it). */
    public boolean hasTokenizer() {
        return tokenizer != null || Files.isRegularFile(tokenizerFile);
    }

    /**
     * The ids that end generation: generation_config.json's, else config.json's, else the
     * tokenizer's EOS token (when the tokenizer files are there).
     */
    public List<Long> eosTokenIds() {
        if (!configEosTokenIds.isEmpty() || !hasTokenizer()) {
            return configEosTokenIds;
        }
        return tokenizer().eosTokenId().isPresent() ? List.of(tokenizer().eosTokenId().getAsLong()) : List.of();
    }

    /**
     * The id used to pad batches: config.json's pad_token_id, else the tokenizer's pad token, else
     * the first EOS id, else 0. Padded positions are masked, so the choice never changes a result.
     */
    public long padTokenId() {
        if (architecture.padTokenId() != null) {
            return architecture.padTokenId();
        }
        if (hasTokenizer() && tokenizer().padTokenId().isPresent()) {
            return tokenizer().padTokenId().getAsLong();
        }
        List<Long> eos = eosTokenIds();
        return eos.isEmpty() ? 0L : eos.get(0);
    }

    /** The native handle, for the training and inference packages. */
    public NativeModel nativeModel() {
        ensureOpen();
        return nativeModel;
    }

    /**
     * Frees the weights (once the prompts, classifiers and trainers made from this model are closed
     * too) and the tokenizer, after the calls in flight have returned. Idempotent.
     */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            try {
                nativeModel.close();
            } finally {
                if (tokenizer != null) {
                    tokenizer.close();
                }
            }
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("model " + modelDir + " is closed; load it again (Model.load) and"
                    + " create prompts, classifiers and trainers from the new instance");
        }
    }
}
