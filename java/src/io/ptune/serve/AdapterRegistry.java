package io.ptune.serve;

import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.adapter.PromptAdapter;
import io.ptune.classify.PromptClassifier;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.model.Model;
import io.ptune.nativebridge.DecodingOptions;
import io.ptune.nativebridge.NativeDecodeSession;
import io.ptune.nativebridge.NativeMixedBatch;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Many adapters, by name, in front of one loaded {@link Model} whose weights they all share
 * (the model is loaded once; an adapter adds only its prompt parameters). Generation adapters of
 * every method (prompt tuning, P-tuning, prefix tuning, composite and dynamic prompts) and
 * classifiers ({@link PromptClassifier} folders) can be added and removed while requests run.
 *
 * <p>{@link #generate} runs requests for different adapters (and the bare model) as one mixed
 * batch: one forward pass, per-row prompts or prefixes, per-row KV caches; every row gives what
 * it gives alone ({@link io.ptune.inference.Generator} with that adapter). Adapters with unfrozen
 * layers (two-stage training) run on their own copy of the model and are generated alone.
 *
 * <pre>{@code
 * try (Model model = Model.load(modelDir);
 *      AdapterRegistry registry = new AdapterRegistry(model)) {
 *     registry.load("support", supportDir);
 *     registry.load("stories", storiesDir);
 *     try (AdapterRegistry.Lease a = registry.acquire("support");
 *          AdapterRegistry.Lease b = registry.acquire("stories")) {
 *         List<Generation> out = registry.generate(List.of(
 *                 new AdapterRegistry.Request(a, model.tokenizer().encode("Hi", true), config),
 *                 new AdapterRegistry.Request(b, model.tokenizer().encode("Once", true), config)));
 *     }
 * }
 * }</pre>
 *
 * <p>Thread-safe. A {@link Lease} keeps its adapter open: {@link #remove} takes the adapter out of
 * the registry at once (new {@link #acquire} calls fail) and closes it when the last lease is
 * released, so in-flight requests finish. The model is borrowed: close the registry first.
 */
public final class AdapterRegistry implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AdapterRegistry.class);
    /** Names requests and URLs can carry unescaped. */
    public static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    private final Model model;
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private boolean closed;

    /** @param model the model every adapter is loaded against (borrowed; it must outlive the registry) */
    public AdapterRegistry(Model model) {
        this.model = Objects.requireNonNull(model, "model");
        if (!model.architecture().causal()) {
            LOG.info("{} is an encoder: its registry serves classifiers only", model.modelDir());
        }
    }

    public Model model() {
        return model;
    }

    /**
     * Loads the adapter in {@code dir} under {@code name}: a classifier when the folder has
     * {@value PromptAdapter#CLASSIFIER_FILE}, else a prompt adapter of any method (ptune's or
     * PEFT's).
     *
     * @throws IllegalArgumentException if the name is malformed or taken
     * @throws io.ptune.AdapterException if the adapter cannot be loaded on this model
     */
    public AdapterInfo load(String name, Path dir) {
        checkName(name);
        Objects.requireNonNull(dir, "dir");
        ensureAbsent(name);
        Entry entry;
        if (Files.exists(dir.resolve(PromptAdapter.CLASSIFIER_FILE))) {
            entry = new Entry(name, null, PromptClassifier.load(model, dir), dir);
        } else {
            entry = new Entry(name, PromptAdapter.load(dir, model), null, dir);
        }
        return put(entry);
    }

    /** Adds a prompt of this model under {@code name}; the registry takes ownership of it. */
    public AdapterInfo add(String name, PromptModule prompt) {
        checkName(name);
        Objects.requireNonNull(prompt, "prompt");
        model.checkPromptModule(prompt);
        return put(new Entry(name, prompt, null, null));
    }

    /** Adds a classifier of this model under {@code name}; the registry takes ownership of it. */
    public AdapterInfo add(String name, PromptClassifier classifier) {
        checkName(name);
        Objects.requireNonNull(classifier, "classifier");
        if (classifier.model() != model) {
            throw new IllegalArgumentException("the classifier was created for another model instance");
        }
        return put(new Entry(name, null, classifier, null));
    }

    /**
     * Takes the adapter out of the registry; it is closed once the requests holding it finish.
     * Returns false when no adapter has that name.
     */
    public boolean remove(String name) {
        Entry entry;
        synchronized (this) {
            entry = entries.remove(name);
        }
        if (entry == null) {
            return false;
        }
        LOG.info("removed adapter '{}'", name);
        entry.release();
        return true;
    }

    public synchronized boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The loaded adapters in the order they were added. */
    public synchronized List<AdapterInfo> adapters() {
        return entries.values().stream().map(e -> e.info).toList();
    }

    /**
     * The adapter {@code name}, held open until the lease is closed (even if it is removed
     * meanwhile).
     *
     * @throws UnknownAdapterException if no adapter of that name is loaded
     */
    public Lease acquire(String name) {
        Objects.requireNonNull(name, "name");
        synchronized (this) {
            ensureOpen();
            Entry entry = entries.get(name);
            if (entry == null) {
                throw new UnknownAdapterException(name, entries.keySet());
            }
            entry.retain();
            return new Lease(entry);
        }
    }

    /**
     * One generation request.
     *
     * @param adapter a lease on a generation adapter of this registry, or null for the bare model
     * @param promptIds the prompt's token ids (at least one), used as given
     * @param config its decoding settings
     */
    public record Request(Lease adapter, long[] promptIds, GenerationConfig config) {
        public Request {
            Objects.requireNonNull(promptIds, "promptIds");
            Objects.requireNonNull(config, "config");
            if (promptIds.length == 0) {
                throw new InvalidConfigException("promptIds", "must not be empty");
            }
            promptIds = promptIds.clone();
        }

        @Override
        public long[] promptIds() {
            return promptIds.clone();
        }
    }

    /**
     * Checks a request as {@link #generate} would, without running it: the adapter is an open
     * generation adapter, the ids lie in the vocabulary, and virtual + prompt + new tokens fit in
     * the model's positions.
     *
     * @throws InvalidConfigException naming the field at fault, or IllegalArgumentException for a
     *     classification adapter
     */
    public void check(Request request) {
        Objects.requireNonNull(request, "request");
        if (!model.architecture().causal()) {
            throw new IllegalArgumentException(model.modelDir() + " is an encoder; it cannot generate");
        }
        PromptModule prompt = request.adapter() == null ? null : request.adapter().prompt();
        if (request.adapter() != null && prompt == null) {
            throw new IllegalArgumentException("adapter '" + request.adapter().name()
                    + "' is a classifier; use classify (POST /v1/classify)");
        }
        long[] ids = request.promptIds;
        int v = model.architecture().vocabSize();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= v) {
                throw new InvalidConfigException("promptIds", "token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + v + ")");
            }
        }
        int p = prompt == null ? 0 : prompt.numVirtualTokens();
        long used = (long) p + ids.length + request.config().maxNewTokens();
        int limit = model.architecture().maxPositionEmbeddings();
        if (limit > 0 && used > limit) {
            throw new InvalidConfigException("maxNewTokens", "is " + request.config().maxNewTokens() + ", but " + p
                    + " virtual + " + ids.length + " prompt + " + request.config().maxNewTokens()
                    + " new tokens exceed the model's " + limit + " positions; ask for "
                    + Math.max(0, limit - p - ids.length) + " new tokens or less, or send a shorter prompt");
        }
    }

    /**
     * Generates every request; requests for different adapters share one forward pass. Returns one
     * {@link Generation} per request, in order, each equal to that request run alone (up to
     * rounding near-ties of greedy decoding; a sampled request draws with its own seed).
     *
     * @throws InvalidConfigException naming the field of the first request that cannot run
     */
    public List<Generation> generate(List<Request> requests) {
        Objects.requireNonNull(requests, "requests");
        if (requests.isEmpty()) {
            return List.of();
        }
        requests.forEach(this::check);
        long[] eos = eosIds();
        long[][] generated = new long[requests.size()][];
        List<NativeMixedBatch.Row> rows = new ArrayList<>();
        List<Integer> mixed = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            Request r = requests.get(i);
            PromptModule prompt = r.adapter() == null ? null : r.adapter().prompt();
            DecodingOptions options = decodingOptions(r.config());
            if (prompt != null && prompt.unfrozenLayers() > 0) {
                // Two-stage adapters run on their own copy of the model: alone.
                generated[i] = model.nativeModel().generate(prompt.nativePrompt(), r.promptIds, ones(r.promptIds.length),
                        1, r.promptIds.length, eos, options)[0];
            } else {
                rows.add(new NativeMixedBatch.Row(prompt == null ? null : prompt.nativePrompt(), r.promptIds, options));
                mixed.add(i);
            }
        }
        if (!rows.isEmpty()) {
            long[][] out = NativeMixedBatch.generate(model.nativeModel(), rows, eos);
            if (out.length != rows.size()) {
                throw new PtuneException("native mixed batch returned " + out.length + " rows for " + rows.size());
            }
            for (int k = 0; k < out.length; k++) {
                generated[mixed.get(k)] = out[k];
            }
        }
        List<Generation> result = new ArrayList<>(requests.size());
        for (int i = 0; i < requests.size(); i++) {
            result.add(generation(requests.get(i), generated[i]));
        }
        return result;
    }

    /**
     * A continuous-batching decoder over this registry's model: requests join a decode that is
     * running and leave it when done, each computing what it computes alone ({@link
     * NativeDecodeSession}). For one thread; close it when done.
     *
     * @throws IllegalArgumentException if the model is an encoder
     */
    public Decoder decoder() {
        ensureOpen();
        if (!model.architecture().causal()) {
            throw new IllegalArgumentException(model.modelDir() + " is an encoder; it cannot generate");
        }
        return new Decoder(new NativeDecodeSession(model.nativeModel(), eosIds()));
    }

    /**
     * Step-level continuous batching ({@link #decoder()}): {@link #add} queues a request, each
     * {@link #step} prefills the queued ones and gives every request its next token; a request
     * leaves when it ends (EOS or its max new tokens) or is {@link #cancel cancelled}.
     */
    public final class Decoder implements AutoCloseable {
        private final NativeDecodeSession session;

        private Decoder(NativeDecodeSession session) {
            this.session = session;
        }

        /**
         * Whether the request can join: not an adapter with unfrozen layers (two-stage training),
         * which runs on its own copy of the model; {@link AdapterRegistry#generate} runs those alone.
         */
        public boolean canJoin(Request request) {
            PromptModule prompt = request.adapter() == null ? null : request.adapter().prompt();
            return prompt == null || prompt.unfrozenLayers() == 0;
        }

        /**
         * Checks the request ({@link AdapterRegistry#check}) and queues it for the next step;
         * returns its id. The lease must stay open until the request ends.
         *
         * @throws IllegalArgumentException if it cannot join ({@link #canJoin})
         */
        public long add(Request request) {
            check(request);
            if (!canJoin(request)) {
                throw new IllegalArgumentException("adapter '" + request.adapter().name() + "' has unfrozen layers;"
                        + " it runs alone (AdapterRegistry.generate)");
            }
            PromptModule prompt = request.adapter() == null ? null : request.adapter().prompt();
            return session.add(prompt == null ? null : prompt.nativePrompt(), request.promptIds,
                    decodingOptions(request.config()));
        }

        /** One token for every queued and running request; see {@link NativeDecodeSession#step}. */
        public List<NativeDecodeSession.Token> step() {
            return session.step();
        }

        /** Drops a queued or running request; false if there is none by that id. */
        public boolean cancel(long id) {
            return session.cancel(id);
        }

        /** Queued and running requests. */
        public int size() {
            return session.size();
        }

        /** The result of a request that generated {@code tokens}, its text decoded. */
        public Generation generation(Request request, long[] tokens) {
            return AdapterRegistry.this.generation(request, tokens);
        }

        @Override
        public void close() {
            session.close();
        }
    }

    private Generation generation(Request request, long[] tokens) {
        return new Generation(request.promptIds, tokens, model.hasTokenizer() ? model.tokenizer().decode(tokens, true)
                : null);
    }

    private DecodingOptions decodingOptions(GenerationConfig c) {
        return new DecodingOptions(c.maxNewTokens(), c.greedy(), c.temperature(), c.topK(), c.topP(), c.seed(),
                model.padTokenId());
    }

    private long[] eosIds() {
        return model.eosTokenIds().stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * Generates one text behind adapter {@code name} (null: the bare model), tokenised with the
     * model's settings (BOS where its tokenizer adds it).
     */
    public Generation generate(String name, String text, GenerationConfig config) {
        Objects.requireNonNull(text, "text");
        long[] ids = model.tokenizer().encode(text, true);
        if (name == null) {
            return generate(List.of(new Request(null, ids, config))).get(0);
        }
        try (Lease lease = acquire(name)) {
            return generate(List.of(new Request(lease, ids, config))).get(0);
        }
    }

    /**
     * Logits of each request's prompt positions as a mixed batch (virtual positions excluded):
     * request i gets promptIds.length rows of V values. Its config is ignored.
     */
    public float[][][] promptLogits(List<Request> requests) {
        requests.forEach(this::check);
        List<NativeMixedBatch.Row> rows = new ArrayList<>();
        DecodingOptions none = new DecodingOptions(0, true, 1.0, 0, 1.0, 0, model.padTokenId());
        for (Request r : requests) {
            PromptModule prompt = r.adapter() == null ? null : r.adapter().prompt();
            if (prompt != null && prompt.unfrozenLayers() > 0) {
                throw new IllegalArgumentException("adapter '" + r.adapter().name() + "' has unfrozen layers;"
                        + " its logits come from Model.logits alone");
            }
            rows.add(new NativeMixedBatch.Row(prompt == null ? null : prompt.nativePrompt(), r.promptIds, none));
        }
        return NativeMixedBatch.logits(model.nativeModel(), rows);
    }

    /**
     * Classifies {@code text} (and {@code textB} for pair tasks, or null) with classifier
     * {@code name}.
     *
     * @throws UnknownAdapterException if no adapter has that name
     * @throws IllegalArgumentException if the adapter is a generation adapter
     */
    public PromptClassifier.Prediction classify(String name, String text, String textB) {
        try (Lease lease = acquire(name)) {
            return lease.classify(text, textB);
        }
    }

    /** Removes (and, once their requests finish, closes) every adapter; later calls fail. Idempotent. */
    @Override
    public void close() {
        List<Entry> all;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            all = new ArrayList<>(entries.values());
            entries.clear();
        }
        all.forEach(Entry::release);
    }

    private static long[] ones(int n) {
        long[] mask = new long[n];
        Arrays.fill(mask, 1L);
        return mask;
    }

    private static void checkName(String name) {
        Objects.requireNonNull(name, "name");
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("adapter name '" + name + "' must be 1-64 letters, digits, '.', '_'"
                    + " or '-', starting with a letter or digit");
        }
    }

    private synchronized void ensureAbsent(String name) {
        ensureOpen();
        if (entries.containsKey(name)) {
            throw new IllegalArgumentException("an adapter named '" + name + "' is loaded already; remove it first");
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("the adapter registry is closed");
        }
    }

    private AdapterInfo put(Entry entry) {
        synchronized (this) {
            if (!closed && !entries.containsKey(entry.info.name())) {
                entries.put(entry.info.name(), entry);
                LOG.info("loaded adapter '{}': {} ({}, {} virtual tokens)", entry.info.name(),
                        entry.info.task(), entry.info.method(), entry.info.virtualTokens());
                return entry.info;
            }
        }
        entry.release();  // lost a race with another add of the name, or with close
        ensureAbsent(entry.info.name());
        throw new IllegalStateException("the adapter registry is closed");
    }

    /** A loaded adapter and its reference count (the registry's own reference plus one per lease). */
    private static final class Entry {
        final AdapterInfo info;
        final PromptModule prompt;
        final PromptClassifier classifier;
        private int refs = 1;

        Entry(String name, PromptModule prompt, PromptClassifier classifier, Path dir) {
            this.prompt = prompt;
            this.classifier = classifier;
            PromptModule p = prompt != null ? prompt : classifier.prompt();
            this.info = new AdapterInfo(name, prompt != null ? AdapterInfo.Task.GENERATE : AdapterInfo.Task.CLASSIFY,
                    p == null ? "none" : p.method().cliName(), p == null ? 0 : p.numVirtualTokens(),
                    classifier == null ? List.of() : classifier.labels(), dir);
        }

        synchronized void retain() {
            if (refs == 0) {
                throw new IllegalStateException("adapter '" + info.name() + "' is closed");
            }
            refs++;
        }

        void release() {
            boolean last;
            synchronized (this) {
                if (refs == 0) {
                    return;
                }
                refs--;
                last = refs == 0;
            }
            if (last) {
                if (prompt != null) {
                    prompt.close();
                }
                if (classifier != null) {
                    classifier.close();
                }
            }
        }
    }

    /** A hold on one adapter: it stays open until every lease on it is closed. Close it once. */
    public static final class Lease implements AutoCloseable {
        private final Entry entry;
        private boolean released;

        private Lease(Entry entry) {
            this.entry = entry;
        }

        public String name() {
            return entry.info.name();
        }

        public AdapterInfo info() {
            return entry.info;
        }

        /** The prompt of a generation adapter, or null for a classifier. */
        PromptModule prompt() {
            return entry.prompt;
        }

        /** Classifies with a classification adapter. */
        public PromptClassifier.Prediction classify(String text, String textB) {
            return classifier().classify(text, textB);
        }

        /**
         * The classifier of a classification adapter (open while the lease is).
         *
         * @throws IllegalArgumentException for a generation adapter
         */
        public PromptClassifier classifier() {
            if (entry.classifier == null) {
                throw new IllegalArgumentException("adapter '" + name() + "' is a generation adapter; use generate"
                        + " (POST /v1/generate)");
            }
            return entry.classifier;
        }

        @Override
        public synchronized void close() {
            if (!released) {
                released = true;
                entry.release();
            }
        }
    }
}
