package io.ptune.nativebridge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Runs a batch whose rows use different prompts (any method, or none) in front of one
 * {@link NativeModel} as one forward pass (ptune::MixedBatch): each row's input-level virtual
 * tokens go before its tokens, each row's prefix fills its own slots of the KV cache, shorter ones
 * left-padded and masked out, so every row computes what it computes alone (up to rounding).
 *
 * <p>Thread-safe like {@link NativeModel}: the model and every row's prompt are held shared for
 * the call, so closing one of them waits for the batch to finish.
 */
public final class NativeMixedBatch {
    /**
     * One row.
     *
     * @param prompt a prompt of the batch's model, or null for the bare model
     * @param ids the row's tokens, without padding (at least one)
     * @param options its decoding settings (generation); maxNewTokens may be 0
     */
    public record Row(NativePrompt prompt, long[] ids, DecodingOptions options) {
        public Row {
            Objects.requireNonNull(ids, "ids");
            Objects.requireNonNull(options, "options");
            if (ids.length == 0) {
                throw new IllegalArgumentException("ids must not be empty");
            }
            ids = ids.clone();
        }

        @Override
        public long[] ids() {
            return ids.clone();
        }
    }

    private NativeMixedBatch() {}

    /**
     * Decodes every row with its own settings (a sampled row draws with its own seed, as alone).
     * Returns each row's new tokens, EOS included when it was produced.
     */
    public static long[][] generate(NativeModel model, List<Row> rows, long[] eosIds) {
        Objects.requireNonNull(eosIds, "eosIds");
        return withBatch(model, rows, batch -> {
            int b = rows.size();
            int n = Math.toIntExact(batch.maxNewTokens());
            long[] tokens = new long[Math.multiplyExact(b, Math.max(n, 1))];
            long[] lengths = new long[b];
            batch.generate(eosIds, eosIds.length, tokens, lengths);
            long[][] out = new long[b][];
            for (int r = 0; r < b; r++) {
                out[r] = Arrays.copyOfRange(tokens, r * n, r * n + (int) lengths[r]);
            }
            return out;
        });
    }

    /**
     * Logits of every row's text positions: row r gets {@code ids.length} rows of V values (its
     * virtual positions are not included).
     */
    public static float[][][] logits(NativeModel model, List<Row> rows) {
        return withBatch(model, rows, batch -> {
            int b = rows.size();
            int t = Math.toIntExact(batch.maxTokens());
            int v = model.vocabSize();
            float[] flat = new float[Math.toIntExact((long) b * t * v)];
            batch.logits(flat);
            float[][][] out = new float[b][][];
            for (int r = 0; r < b; r++) {
                int tr = rows.get(r).ids.length;
                out[r] = new float[tr][];
                for (int i = 0; i < tr; i++) {
                    int start = (r * t + t - tr + i) * v;
                    out[r][i] = Arrays.copyOfRange(flat, start, start + v);
                }
            }
            return out;
        });
    }

    private interface BatchBody<T> {
        T run(PtuneNative.MixedBatch batch);
    }

    private static <T> T withBatch(NativeModel model, List<Row> rows, BatchBody<T> body) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(rows, "rows");
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("a mixed batch needs at least one row");
        }
        List<HandleGuard.Use> uses = new ArrayList<>();
        uses.add(model.guard().shared());
        for (Row row : rows) {
            Objects.requireNonNull(row, "row");
            if (row.prompt() != null) {
                if (row.prompt().model() != model) {
                    throw new IllegalArgumentException("a row's prompt was created for another model");
                }
                uses.add(row.prompt().guard().shared());
            }
        }
        return NativeCalls.call(() -> {
            try (PtuneNative.MixedBatch batch = new PtuneNative.MixedBatch(model.handle());
                    PtuneNative.GenerateOptions options = new PtuneNative.GenerateOptions()) {
                for (Row row : rows) {
                    batch.addRow(row.prompt() == null ? null : row.prompt().handle(), row.ids, row.ids.length,
                            row.options().copyTo(options));
                }
                return body.run(batch);
            }
        }, uses.toArray(HandleGuard.Use[]::new));
    }
}
