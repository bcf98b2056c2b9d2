package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class SoftPromptTest {
    @Test
    void isAValue() {
        float[] values = {1, 2, 3, 4, 5, 6};
        SoftPrompt prompt = new SoftPrompt(2, 3, values);
        values[0] = 99;
        assertEquals(1f, prompt.values()[0], "the constructor copies");
        prompt.values()[1] = 99;
        assertEquals(2f, prompt.values()[1], "the accessor copies");
        assertArrayEquals(new float[] {4, 5, 6}, prompt.row(1));
        assertEquals(new SoftPrompt(2, 3, new float[] {1, 2, 3, 4, 5, 6}), prompt);
        assertNotEquals(new SoftPrompt(3, 2, new float[] {1, 2, 3, 4, 5, 6}), prompt);
    }

    @Test
    void validates() {
        assertThrows(IllegalArgumentException.class, () -> new SoftPrompt(0, 3, new float[0]));
        assertThrows(IllegalArgumentException.class, () -> new SoftPrompt(2, 3, new float[5]));
        assertThrows(IllegalArgumentException.class, () -> new SoftPrompt(1, 2, new float[] {1, Float.NaN}));
    }
}
