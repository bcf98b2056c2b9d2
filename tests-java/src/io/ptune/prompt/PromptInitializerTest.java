package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import io.ptune.TestPaths;
import io.ptune.model.Tokenizer;
import org.junit.jupiter.api.Test;

class PromptInitializerTest {
    @Test
    void textIdsAreTrimmedWhenLonger() {
        assertArrayEquals(new long[] {1, 2, 3}, PromptInitializer.textInitIds(new long[] {1, 2, 3, 4, 5}, 3));
    }

    @Test
    void textIdsAreRepeatedThenTrimmedWhenShorter() {
        // PEFT: ids * ceil(7 / 3) = 9 ids, then the first 7.
        assertArrayEquals(new long[] {1, 2, 3, 1, 2, 3, 1}, PromptInitializer.textInitIds(new long[] {1, 2, 3}, 7));
        assertArrayEquals(new long[] {4, 5}, PromptInitializer.textInitIds(new long[] {4, 5}, 2));
        assertThrows(InvalidConfigException.class, () -> PromptInitializer.textInitIds(new long[0], 2));
    }

    @Test
    void textIdsIncludeSpecialTokensAsPeftsTokenizerCallDoes() {
        try (Tokenizer tokenizer = Tokenizer.load(TestPaths.stories260k())) {
            long[] text = tokenizer.encode("Once upon a time", true);
            assertArrayEquals(new long[] {1, 403, 407, 261, 378}, text);
            assertArrayEquals(new long[] {1, 403, 407, 261, 378, 1, 403, 407},
                    PromptInitializer.textInitIds(text, 8));
        }
    }

    @Test
    void randomIsStandardNormalAndSeeded() {
        float[] values = PromptInitializer.randomNormal(100, 64, 7);
        double sum = 0;
        double sumSquares = 0;
        for (float v : values) {
            sum += v;
            sumSquares += v * v;
        }
        double mean = sum / values.length;
        double variance = sumSquares / values.length - mean * mean;
        assertEquals(0, mean, 0.05);
        assertEquals(1, variance, 0.05);
        assertArrayEquals(values, PromptInitializer.randomNormal(100, 64, 7));
        assertTrue(values[0] != PromptInitializer.randomNormal(100, 64, 8)[0]);
    }

    @Test
    void sampledVocabIdsStayInRange() {
        long[] ids = PromptInitializer.sampleVocabIds(1000, 512, 1);
        for (long id : ids) {
            assertTrue(id >= 0 && id < 512);
        }
        assertArrayEquals(ids, PromptInitializer.sampleVocabIds(1000, 512, 1));
    }

    @Test
    void meanRows() {
        assertArrayEquals(new float[] {2, 3}, PromptInitializer.meanRows(new float[] {1, 2, 3, 4}, 2, 2));
    }
}
