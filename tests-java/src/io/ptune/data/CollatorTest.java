package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class CollatorTest {
    private static TokenizedExample example(long[] ids, int promptLength) {
        long[] labels = ids.clone();
        for (int i = 0; i < promptLength; i++) {
            labels[i] = -100;
        }
        return new TokenizedExample(ids, labels);
    }

    @Test
    void padsTrainingBatchesOnTheRight() {
        Batch batch = new Collator(0).collate(List.of(
                example(new long[] {1, 5, 6, 7}, 2),
                example(new long[] {1, 9}, 1)));
        assertEquals(2, batch.batchSize());
        assertEquals(4, batch.seqLen());
        assertArrayEquals(new long[] {1, 5, 6, 7, 1, 9, 0, 0}, batch.ids());
        assertArrayEquals(new long[] {1, 1, 1, 1, 1, 1, 0, 0}, batch.mask());
        assertArrayEquals(new long[] {-100, -100, 6, 7, -100, 9, -100, -100}, batch.labels());
        assertEquals(3, batch.labelTokens());
        assertEquals(6, batch.realTokens());
    }

    @Test
    void padsGenerationBatchesOnTheLeft() {
        Batch batch = new Collator(2).leftPad(List.of(new long[] {1, 3}, new long[] {1, 4, 5, 6}));
        assertArrayEquals(new long[] {2, 2, 1, 3, 1, 4, 5, 6}, batch.ids());
        assertArrayEquals(new long[] {0, 0, 1, 1, 1, 1, 1, 1}, batch.mask());
        assertThrows(IllegalArgumentException.class, () -> new Collator(0).leftPad(List.of(new long[0])));
    }

    private static List<TokenizedExample> numbered(int n) {
        List<TokenizedExample> examples = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            examples.add(example(new long[] {1, 100 + i}, 1));
        }
        return examples;
    }

    private static List<Long> firstIdsOfEpoch(List<TokenizedExample> examples, long seed, int epoch) {
        List<Long> order = new ArrayList<>();
        for (TokenizedExample e : new BatchIterator(examples, 3, new Collator(0), seed, epoch, true).order()) {
            order.add(e.ids()[1]);
        }
        return order;
    }

    @Test
    void shufflesReproduciblyPerEpoch() {
        List<TokenizedExample> examples = numbered(10);
        assertEquals(firstIdsOfEpoch(examples, 42, 0), firstIdsOfEpoch(examples, 42, 0));
        assertNotEquals(firstIdsOfEpoch(examples, 42, 0), firstIdsOfEpoch(examples, 42, 1));
        assertNotEquals(firstIdsOfEpoch(examples, 42, 0), firstIdsOfEpoch(examples, 7, 0));
        assertEquals(Set.copyOf(firstIdsOfEpoch(examples, 42, 0)), new HashSet<>(firstIdsOfEpoch(examples, 42, 1)));
    }

    @Test
    void servesEveryExampleOnceWithASmallerLastBatch() {
        List<TokenizedExample> examples = numbered(10);
        BatchIterator batches = new BatchIterator(examples, 4, new Collator(0), 1, 0, true);
        List<Integer> sizes = new ArrayList<>();
        Set<Long> seen = new HashSet<>();
        while (batches.hasNext()) {
            Batch batch = batches.next();
            sizes.add(batch.batchSize());
            for (int row = 0; row < batch.batchSize(); row++) {
                seen.add(batch.ids()[row * batch.seqLen() + 1]);
            }
        }
        assertEquals(List.of(4, 4, 2), sizes);
        assertEquals(10, seen.size());
        assertEquals(3, BatchIterator.batchesPerEpoch(10, 4));
        assertFalse(batches.hasNext());
    }

    @Test
    void unshuffledKeepsFileOrder() {
        List<TokenizedExample> examples = numbered(5);
        assertEquals(examples, new BatchIterator(examples, 2, new Collator(0), 1, 3, false).order());
    }
}
