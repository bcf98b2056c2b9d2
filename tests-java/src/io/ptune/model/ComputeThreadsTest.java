package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.ptune.InvalidConfigException;
import org.junit.jupiter.api.Test;

class ComputeThreadsTest {
    @Test
    void startsAtTheProcessorCountAndCanBeChanged() {
        int initial = ComputeThreads.get();
        if (System.getenv("PTUNE_THREADS") == null && System.getProperty("ptune.threads") == null
                && System.getenv("OMP_NUM_THREADS") == null) {
            assertEquals(Runtime.getRuntime().availableProcessors(), initial);
        }
        try {
            ComputeThreads.set(1);
            assertEquals(1, ComputeThreads.get());
            ComputeThreads.set(3);
            assertEquals(3, ComputeThreads.get());
        } finally {
            ComputeThreads.set(initial);
        }
        assertEquals(initial, ComputeThreads.get());
    }

    @Test
    void rejectsCountsOutOfRange() {
        InvalidConfigException e = assertThrows(InvalidConfigException.class, () -> ComputeThreads.set(0));
        assertEquals("threads", e.field());
        InvalidConfigException huge = assertThrows(InvalidConfigException.class, () -> ComputeThreads.set(100_000));
        assertEquals("threads", huge.field());
    }
}
