package io.ptune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ExceptionsTest {
    @Test
    void invalidConfigNamesTheField() {
        InvalidConfigException e = new InvalidConfigException("batchSize", "must be > 0, got 0");
        assertEquals("batchSize", e.field());
        assertEquals("batchSize: must be > 0, got 0", e.getMessage());
        assertInstanceOf(PtuneException.class, e);
    }

    @Test
    void divergenceSaysWhereAndWhatToDo() {
        TrainingDivergedException e = new TrainingDivergedException(17, Double.NaN);
        assertEquals(17, e.step());
        assertTrue(Double.isNaN(e.loss()));
        assertTrue(e.getMessage().contains("step 17") && e.getMessage().contains("NaN")
                && e.getMessage().contains("--lr"), e.getMessage());
    }

    @Test
    void everyErrorIsAPtuneException() {
        for (PtuneException e : new PtuneException[] {new ModelFormatException("m"), new AdapterException("a"),
                new DatasetException("d"), new InvalidConfigException("f", "p"), new TrainingDivergedException(1, 1),
                new CheckpointException("c"), new ResourceExhaustedException("r")}) {
            assertInstanceOf(RuntimeException.class, e);
        }
    }
}
