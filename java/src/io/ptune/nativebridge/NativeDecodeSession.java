package io.ptune.nativebridge;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Step-level continuous batching over one {@link NativeModel} (ptune::DecodeSession): a decoding
 * batch that rows join and leave between steps. A row {@link #add added} between two steps is
 * prefilled at the next {@link #step} together with the others added meanwhile; its KV cache then
 * joins the running batch's (left-padded and masked), and a row leaves the batch when it ends or
 * is {@link #cancel cancelled}. Every row computes the tokens it computes alone, up to rounding (a
 * sampled row draws with its own seed).
 *
 * <p>Meant for one scheduling thread: calls on a session have it to themselves. The model is held
 * shared for each call; a row's prompt only while {@link #add} builds the row.
 */
public final class NativeDecodeSession implements AutoCloseable {
    /** A token of one row from one {@link #step}: {@code done} when the row ended with it. */
    public record Token(long id, long token, boolean done) {}

    private final NativeModel model;
    private final PtuneNative.DecodeSession handle;
    private final HandleGuard guard;

    /** @param eosIds tokens that end a row when generated */
    public NativeDecodeSession(NativeModel model, long[] eosIds) {
        this.model = Objects.requireNonNull(model, "model");
        Objects.requireNonNull(eosIds, "eosIds");
        this.handle = NativeCalls.call(() -> new PtuneNative.DecodeSession(model.handle(), eosIds, eosIds.length),
                model.guard().shared());
        this.guard = new HandleGuard(HandleGuard.Kind.SESSION, "decoding session", "open a new session");
    }

    /**
     * Queues a row for the next step and returns its id (0, 1, 2, ... in order). The row is
     * checked now: ids in the vocabulary, its settings (maxNewTokens at least 1), its positions.
     *
     * @param prompt a prompt of this session's model without unfrozen layers, or null for the bare model
     * @param ids the row's tokens, without padding (at least one)
     */
    public long add(NativePrompt prompt, long[] ids, DecodingOptions options) {
        Objects.requireNonNull(ids, "ids");
        Objects.requireNonNull(options, "options");
        if (ids.length == 0) {
            throw new IllegalArgumentException("ids must not be empty");
        }
        if (prompt != null && prompt.model() != model) {
            throw new IllegalArgumentException("the prompt was created for another model");
        }
        List<HandleGuard.Use> uses = new ArrayList<>(List.of(model.guard().shared(), guard.exclusive()));
        if (prompt != null) {
            uses.add(prompt.guard().shared());
        }
        return NativeCalls.call(() -> {
            try (PtuneNative.GenerateOptions o = new PtuneNative.GenerateOptions()) {
                return handle.add(prompt == null ? null : prompt.handle(), ids, ids.length, options.copyTo(o));
            }
        }, uses.toArray(HandleGuard.Use[]::new));
    }

    /** Drops a queued or running row; false if there is none by that id (e.g. it already ended). */
    public boolean cancel(long id) {
        return NativeCalls.call(() -> handle.cancel(id), model.guard().shared(), guard.exclusive());
    }

    /** Queued and running rows. */
    public int size() {
        return NativeCalls.call(() -> Math.toIntExact(handle.size()), guard.exclusive());
    }

    /**
     * Prefills the queued rows, picks one token for every row (queued or running) and feeds the
     * unfinished ones back: one forward pass for the new rows and one for the running ones.
     * Returns the tokens, running rows first; empty when the session has no rows.
     */
    public List<Token> step() {
        return NativeCalls.call(() -> {
            int n = Math.toIntExact(handle.size());
            if (n == 0) {
                return List.of();
            }
            long[] ids = new long[n];
            long[] tokens = new long[n];
            long[] done = new long[n];
            int written = Math.toIntExact(handle.step(ids, tokens, done));
            List<Token> out = new ArrayList<>(written);
            for (int i = 0; i < written; i++) {
                out.add(new Token(ids[i], tokens[i], done[i] != 0));
            }
            return out;
        }, model.guard().shared(), guard.exclusive());
    }

    /** Frees the session (its KV caches); waits for a call in flight. */
    @Override
    public void close() {
        guard.close(handle::close);
    }
}
