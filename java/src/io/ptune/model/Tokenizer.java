package io.ptune.model;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Hugging Face fast tokenizer ({@code tokenizer.json}, run by the Rust {@code tokenizers}
 * library through DJL), configured the way transformers configures it for the model.
 *
 * <p>Special tokens: {@code tokenizer_config.json}'s {@code add_bos_token} / {@code
 * add_eos_token} decide whether {@link #encode(String, boolean) encode(text, true)} adds BOS / EOS,
 * as transformers' Llama tokenizer does; where the file does not say, the {@code tokenizer.json}
 * post-processor decides. The tokenizer never truncates or pads on its own: ptune's data pipeline
 * does both explicitly.
 *
 * <p>For Llama tokenizers ({@code tokenizer_class} LlamaTokenizer / LlamaTokenizerFast) the text
 * pipeline is the one transformers 5 builds for that class, not the file's: transformers takes only
 * the vocabulary, merges and post-processor from {@code tokenizer.json} and sets no normalizer, a
 * Metaspace pre-tokenizer (prefix space "always" when {@code legacy} is true, else "first"; none
 * when {@code add_prefix_space} is false) and the matching decoder. The two differ only on text that
 * starts with a space: the file's {@code Prepend} normalizer adds a second "▁", Metaspace does not.
 *
 * <p>Never touches the network: DJL's offline mode is switched on before the native library is
 * loaded, so DJL uses the CPU build bundled in its jar instead of downloading another flavour.
 *
 * <p>Thread-safe: any number of threads may encode and decode at once (the Rust tokenizer is
 * immutable once built). {@link #close} waits for the calls in flight; afterwards they throw
 * {@link IllegalStateException}, and closing again does nothing.
 */
public final class Tokenizer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Tokenizer.class);

    /** Text whose encoding with and without special tokens reveals the post-processor's template. */
    private static final String PROBE_TEXT = "a";
    private static final String PROBE_TEXT_B = "b";

    /**
     * The special tokens the tokenizer's post-processor puts around one text ({@code prefix} text
     * {@code suffix}) or a pair ({@code prefix} a {@code middle} b {@code suffix}): BERT's
     * {@code [CLS] a [SEP] b [SEP]}. Segment ids: {@code prefix}, a and {@code middle} get
     * {@code typeA}; b and {@code suffix} get {@code typeB}.
     */
    public record SpecialTokens(long[] prefix, long[] middle, long[] suffix, long typeA, long typeB) {
        public SpecialTokens {
            prefix = prefix.clone();
            middle = middle.clone();
            suffix = suffix.clone();
        }

        @Override
        public long[] prefix() {
            return prefix.clone();
        }

        @Override
        public long[] middle() {
            return middle.clone();
        }

        @Override
        public long[] suffix() {
            return suffix.clone();
        }
    }

    private final HuggingFaceTokenizer tokenizer;
    private final Path source;
    private final OptionalLong bos;
    private final OptionalLong eos;
    private final OptionalLong pad;
    private final boolean addBos;
    private final boolean addEos;
    /** True when add_bos/add_eos agree with what the post-processor does by itself. */
    private final boolean postProcessorMatches;
    private final int vocabSize;
    /** Every token's id (vocabulary and added tokens), for label words and special tokens. */
    private final Map<String, Long> tokenIds;
    /** id -> token string, built on the first {@link #tokenString} call. */
    private String[] tokenStrings;
    private final OptionalLong mask;
    private final OptionalLong unknown;
    private final SpecialTokens single;
    private final SpecialTokens pair;
    /** Encoding and decoding share it; close() takes it exclusively, so it never frees a tokenizer in use. */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private volatile boolean closed;

    private Tokenizer(HuggingFaceTokenizer tokenizer, Path source, OptionalLong bos,
            OptionalLong eos, OptionalLong pad, OptionalLong mask, OptionalLong unknown, Boolean configAddBos,
            Boolean configAddEos, Map<String, Long> tokenIds) {
        this.tokenizer = tokenizer;
        this.source = source;
        this.bos = bos;
        this.eos = eos;
        this.pad = pad;
        this.mask = mask;
        this.unknown = unknown;
        this.tokenIds = tokenIds;
        this.vocabSize = tokenIds.values().stream().mapToInt(Math::toIntExact).max().orElse(-1) + 1;

        long[] plain = tokenizer.encode(PROBE_TEXT, false, false).getIds();
        long[] full = tokenizer.encode(PROBE_TEXT, true, false).getIds();
        int offset = indexOf(full, plain);
        long[] prefix = offset < 0 ? full : Arrays.copyOfRange(full, 0, offset);
        long[] suffix = offset < 0 ? new long[0] : Arrays.copyOfRange(full, offset + plain.length, full.length);
        boolean postAddsBos = bos.isPresent() && Arrays.equals(prefix, new long[] {bos.getAsLong()});
        boolean postAddsEos = eos.isPresent() && Arrays.equals(suffix, new long[] {eos.getAsLong()});
        boolean postOnlyBosEos = (prefix.length == 0 || postAddsBos) && (suffix.length == 0 || postAddsEos);

        this.addBos = configAddBos != null ? configAddBos : postAddsBos;
        this.addEos = configAddEos != null ? configAddEos : postAddsEos;
        this.postProcessorMatches = addBos == postAddsBos && addEos == postAddsEos;
        if (addBos && bos.isEmpty()) {
            throw new ModelFormatException(source + ": add_bos_token is true but no bos_token is defined");
        }
        if (addEos && eos.isEmpty()) {
            throw new ModelFormatException(source + ": add_eos_token is true but no eos_token is defined");
        }
        if (!postProcessorMatches && !postOnlyBosEos) {
            LOG.warn("{}: tokenizer.json's post-processor adds {} / {} around the text, but"
                    + " tokenizer_config.json asks for add_bos_token={} add_eos_token={}; following"
                    + " tokenizer_config.json", source, Arrays.toString(prefix),
                    Arrays.toString(suffix), addBos, addEos);
        }
        this.single = singleTemplate(plain);
        this.pair = pairTemplate();
    }

    /**
     * The special tokens {@code encode(text, true)} puts around a text: {@code prefix} before it,
     * {@code suffix} after it (found by encoding a probe text with and without them).
     */
    private SpecialTokens singleTemplate(long[] plain) {
        long[] full = encode(PROBE_TEXT, true);
        int offset = indexOf(full, plain);
        if (offset < 0) {
            return new SpecialTokens(new long[0], new long[0], new long[0], 0, 0);
        }
        return new SpecialTokens(Arrays.copyOfRange(full, 0, offset), new long[0],
                Arrays.copyOfRange(full, offset + plain.length, full.length), 0, 0);
    }

    /** The post-processor's template for a pair of texts, with the segment ids of its two parts. */
    private SpecialTokens pairTemplate() {
        long[] a = tokenizer.encode(PROBE_TEXT, false, false).getIds();
        long[] b = tokenizer.encode(PROBE_TEXT_B, false, false).getIds();
        Encoding full = tokenizer.encode(PROBE_TEXT, PROBE_TEXT_B, true, false);
        long[] ids = full.getIds();
        long[] types = full.getTypeIds();
        int i = indexOf(ids, a);
        int j = i < 0 ? -1 : indexOf(Arrays.copyOfRange(ids, i + a.length, ids.length), b);
        if (i < 0 || j < 0) {
            return new SpecialTokens(single.prefix(), new long[0], single.suffix(), 0, 0);
        }
        j += i + a.length;
        return new SpecialTokens(Arrays.copyOfRange(ids, 0, i), Arrays.copyOfRange(ids, i + a.length, j),
                Arrays.copyOfRange(ids, j + b.length, ids.length), types[i], types[j]);
    }

    /**
     * Loads {@code tokenizer.json} (and {@code tokenizer_config.json} / {@code
     * special_tokens_map.json} when present) from a Hugging Face model directory.
     *
     * @throws ModelFormatException if tokenizer.json is missing or cannot be parsed
     */
    public static Tokenizer load(Path modelDir) {
        Path tokenizerJson = Files.isDirectory(modelDir) ? modelDir.resolve("tokenizer.json") : modelDir;
        Path dir = tokenizerJson.toAbsolutePath().getParent();
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new ModelFormatException(tokenizerJson + " does not exist; ptune needs the fast"
                    + " tokenizer file tokenizer.json in the model directory (in Python:"
                    + " AutoTokenizer.from_pretrained(...).save_pretrained(dir) writes it)");
        }
        JsonNode tokenizerRoot = JsonFiles.readObject(tokenizerJson, ModelFormatException::new, "");
        Map<String, Long> specialIds = tokenIds(tokenizerRoot);

        JsonNode config = readOptional(dir.resolve("tokenizer_config.json"));
        JsonNode specialMap = readOptional(dir.resolve("special_tokens_map.json"));
        OptionalLong bos = specialTokenId("bos_token", config, specialMap, specialIds, tokenizerJson);
        OptionalLong eos = specialTokenId("eos_token", config, specialMap, specialIds, tokenizerJson);
        OptionalLong pad = specialTokenId("pad_token", config, specialMap, specialIds, tokenizerJson);
        OptionalLong mask = specialTokenId("mask_token", config, specialMap, specialIds, tokenizerJson);
        if (mask.isEmpty()) {
            // Exports without tokenizer_config.json (the ONNX jars): the conventional names.
            mask = firstPresent(specialIds, "[MASK]", "<mask>");
        }
        OptionalLong unknown = specialTokenId("unk_token", config, specialMap, specialIds, tokenizerJson);
        if (unknown.isEmpty() && tokenizerRoot.path("model").path("unk_token").isTextual()) {
            unknown = firstPresent(specialIds, tokenizerRoot.path("model").path("unk_token").asText());
        }
        Boolean addBos = optionalBoolean(config, "add_bos_token", dir);
        Boolean addEos = optionalBoolean(config, "add_eos_token", dir);

        HuggingFaceTokenizer djl = openDjl(tokenizerJson, asTransformersBuildsIt(tokenizerRoot, config, dir));
        try {
            return new Tokenizer(djl, tokenizerJson, bos, eos, pad, mask, unknown, addBos, addEos, specialIds);
        } catch (RuntimeException e) {
            djl.close();
            throw e;
        }
    }

    /**
     * Token ids of {@code text}.
     *
     * @param addSpecialTokens add BOS/EOS as the model's tokenizer settings say (what transformers'
     *     {@code tokenizer(text)} does); false gives the bare text tokens
     */
    public long[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        return inUse(() -> encodeOpen(text, addSpecialTokens));
    }

    private long[] encodeOpen(String text, boolean addSpecialTokens) {
        if (!addSpecialTokens) {
            return tokenizer.encode(text, false, false).getIds();
        }
        if (postProcessorMatches) {
            return tokenizer.encode(text, true, false).getIds();
        }
        long[] plain = tokenizer.encode(text, false, false).getIds();
        int start = addBos ? 1 : 0;
        long[] ids = new long[plain.length + start + (addEos ? 1 : 0)];
        if (addBos) {
            ids[0] = bos.getAsLong();
        }
        System.arraycopy(plain, 0, ids, start, plain.length);
        if (addEos) {
            ids[ids.length - 1] = eos.getAsLong();
        }
        return ids;
    }

    /** The special tokens {@link #encode(String, boolean) encode(text, true)} puts around one text. */
    public SpecialTokens singleSpecialTokens() {
        return single;
    }

    /**
     * The special tokens and segment ids of a pair of texts, as the tokenizer's post-processor
     * builds it (what transformers' {@code tokenizer(a, b)} does); without a pair template the two
     * texts are concatenated between the single-text specials.
     */
    public SpecialTokens pairSpecialTokens() {
        return pair;
    }

    /** The mask token ({@code [MASK]}, {@code <mask>}) of a masked-LM tokenizer. */
    public OptionalLong maskTokenId() {
        return mask;
    }

    /** The unknown token ({@code [UNK]}), which a word outside the vocabulary encodes to. */
    public OptionalLong unknownTokenId() {
        return unknown;
    }

    /** The id of one token string (a vocabulary entry or an added token), if it is one. */
    public OptionalLong tokenId(String token) {
        Long id = tokenIds.get(token);
        return id == null ? OptionalLong.empty() : OptionalLong.of(id);
    }

    /**
     * The vocabulary entry of {@code id} as tokenizer.json spells it ("▁Max", "Ġthe", "##ing",
     * "<0x0A>"), or empty for an id it does not define.
     */
    public synchronized Optional<String> tokenString(long id) {
        if (tokenStrings == null) {
            tokenStrings = new String[vocabSize];
            tokenIds.forEach((token, tokenId) -> {
                if (tokenId >= 0) {
                    tokenStrings[Math.toIntExact(tokenId)] = token;
                }
            });
        }
        return id < 0 || id >= tokenStrings.length ? Optional.empty() : Optional.ofNullable(tokenStrings[(int) id]);
    }

    /** The text of {@code ids}; {@code skipSpecial} drops BOS/EOS/PAD and other special tokens. */
    public String decode(long[] ids, boolean skipSpecial) {
        Objects.requireNonNull(ids, "ids");
        return inUse(() -> ids.length == 0 ? "" : tokenizer.decode(ids, skipSpecial));
    }

    /** The string pieces of {@code text} (no special tokens), for diagnostics. */
    public String[] tokens(String text) {
        return inUse(() -> tokenizer.encode(text, false, false).getTokens());
    }

    public OptionalLong bosTokenId() {
        return bos;
    }

    public OptionalLong eosTokenId() {
        return eos;
    }

    public OptionalLong padTokenId() {
        return pad;
    }

    /** Whether {@code encode(text, true)} starts with BOS. */
    public boolean addsBos() {
        return addBos;
    }

    /** Whether {@code encode(text, true)} ends with EOS. */
    public boolean addsEos() {
        return addEos;
    }

    /** One more than the largest token id tokenizer.json defines. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The tokenizer.json this was loaded from. */
    public Path source() {
        return source;
    }

    /** Frees the native tokenizer once the calls in flight have returned; idempotent. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                tokenizer.close();
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Runs body on the open tokenizer; close() waits for it. */
    private <T> T inUse(Supplier<T> body) {
        lock.readLock().lock();
        try {
            if (closed) {
                throw new IllegalStateException("tokenizer " + source + " is closed; load the model (or the"
                        + " tokenizer) again");
            }
            return body.get();
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * tokenizer.json as transformers 5 builds the tokenizer from it: unchanged, except for the Llama
     * tokenizer class, whose normalizer, pre-tokenizer and decoder transformers replaces (see
     * {@code LlamaTokenizer.__init__} and {@code convert_slow_tokenizer._get_prepend_scheme}).
     */
    private static JsonNode asTransformersBuildsIt(JsonNode root, JsonNode config, Path dir) {
        String tokenizerClass = config == null ? null : config.path("tokenizer_class").asText(null);
        boolean llama = "LlamaTokenizer".equals(tokenizerClass) || "LlamaTokenizerFast".equals(tokenizerClass);
        if (!llama || !"BPE".equals(root.path("model").path("type").asText())) {
            return root;
        }
        Boolean addPrefixSpace = optionalBoolean(config, "add_prefix_space", dir);
        Boolean legacy = optionalBoolean(config, "legacy", dir);
        boolean prefix = addPrefixSpace == null || addPrefixSpace;
        String prependScheme = !prefix ? "never" : (legacy != null && legacy ? "always" : "first");

        ObjectNode rebuilt = root.deepCopy();
        rebuilt.putNull("normalizer");
        ObjectNode metaspace = rebuilt.putObject("pre_tokenizer");
        metaspace.put("type", "Metaspace");
        metaspace.put("replacement", "\u2581");
        metaspace.put("prepend_scheme", prependScheme);
        metaspace.put("split", false);
        ObjectNode decoder = rebuilt.putObject("decoder");
        decoder.put("type", "Sequence");
        ArrayNode steps = decoder.putArray("decoders");
        ObjectNode replace = steps.addObject();
        replace.put("type", "Replace");
        replace.putObject("pattern").put("String", "\u2581");
        replace.put("content", " ");
        steps.addObject().put("type", "ByteFallback");
        steps.addObject().put("type", "Fuse");
        if (prefix) {
            ObjectNode strip = steps.addObject();
            strip.put("type", "Strip");
            strip.put("content", " ");
            strip.put("start", 1);
            strip.put("stop", 0);
        }
        return rebuilt;
    }

    private static HuggingFaceTokenizer openDjl(Path tokenizerJson, JsonNode root) {
        // Offline: the bundled CPU library is used, DJL never downloads a library or a tokenizer.
        if (System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
        Map<String, String> options = new HashMap<>();
        options.put("addSpecialTokens", "true");
        options.put("truncation", "false");
        options.put("padding", "false");
        try (InputStream in = new ByteArrayInputStream(JsonFiles.MAPPER.writeValueAsBytes(root))) {
            return HuggingFaceTokenizer.newInstance(in, options);
        } catch (IOException e) {
            throw new ModelFormatException("cannot read " + tokenizerJson + ": " + e, e);
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            // The Rust parser reports malformed files as plain runtime exceptions.
            throw new ModelFormatException(tokenizerJson + " could not be loaded by the Hugging Face"
                    + " tokenizers library: " + e.getMessage(), e);
        }
    }

    private static JsonNode readOptional(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        return JsonFiles.readObject(file, ModelFormatException::new, "");
    }

    private static Boolean optionalBoolean(JsonNode config, String field, Path dir) {
        if (config == null || JsonFiles.isAbsent(config.get(field))) {
            return null;
        }
        JsonNode node = config.get(field);
        if (!node.isBoolean()) {
            throw new ModelFormatException(dir.resolve("tokenizer_config.json") + ": field '" + field
                    + "' must be true or false, got " + node);
        }
        return node.booleanValue();
    }

    /** Every token's id: the model vocabulary (when it is a map) plus the added tokens. */
    private static Map<String, Long> tokenIds(JsonNode root) {
        Map<String, Long> ids = new HashMap<>();
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            for (Map.Entry<String, JsonNode> entry : vocab.properties()) {
                ids.put(entry.getKey(), entry.getValue().asLong());
            }
        } else if (vocab.isArray()) {
            // Unigram: a list of [piece, score]; the id is the position.
            long id = 0;
            for (JsonNode item : vocab) {
                ids.put(item.path(0).asText(), id++);
            }
        }
        for (JsonNode added : root.path("added_tokens")) {
            ids.put(added.path("content").asText(), added.path("id").asLong());
        }
        return ids;
    }

    private static OptionalLong specialTokenId(String field, JsonNode config, JsonNode specialMap,
            Map<String, Long> ids, Path tokenizerJson) {
        String content = specialTokenContent(config, field);
        if (content == null) {
            content = specialTokenContent(specialMap, field);
        }
        if (content == null) {
            return OptionalLong.empty();
        }
        Long id = ids.get(content);
        if (id == null) {
            throw new ModelFormatException(field + " '" + content + "' (tokenizer_config.json /"
                    + " special_tokens_map.json) is not a token of " + tokenizerJson);
        }
        return OptionalLong.of(id);
    }

    /** A special token is written either as a string or as an AddedToken object with "content". */
    private static String specialTokenContent(JsonNode root, String field) {
        if (root == null) {
            return null;
        }
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return node.path("content").asText();
        }
        throw new ModelFormatException("tokenizer_config.json / special_tokens_map.json: field '"
                + field + "' must be a string or an object with \"content\", got " + node);
    }

    private static OptionalLong firstPresent(Map<String, Long> ids, String... tokens) {
        for (String token : tokens) {
            Long id = ids.get(token);
            if (id != null) {
                return OptionalLong.of(id);
            }
        }
        return OptionalLong.empty();
    }

    private static int indexOf(long[] haystack, long[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
