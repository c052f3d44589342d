// The LSTM and vanilla-RNN recurrences of lstmgan, forward and backward through time, in C++.
//
// Same equations as lstm.py / rnn.py, with the gates fused in the order i, f, o, g:
//
//     a_t = W_x x_t + b + W_h h_{t-1}
//     i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
//     c_t = f ⊙ c_{t-1} + i ⊙ g;         h_t = o ⊙ tanh(c_t)
//
// Per step: one recurrent GEMM (ATen mm into preallocated buffers) and ONE vectorised pass
// (at::vec::Vectorized) over the [B, 4H] block for all gate arithmetic. For a small input
// (input_dim <= 16, the palindrome task's 1 or 10) W_x x_t + b is folded into that pass instead
// of being a separate GEMM over all steps. Backward: one fused pass per step for the gate
// gradients and one GEMM for dh_{t-1}; the weight gradients are single GEMMs over all steps at
// the end (dW_h = Σ_t δa_t h_{t-1}ᵀ as one [4H, T·B] × [T·B, H] product).
//
// Threads: the rows of a batch never interact inside a recurrence, so at::parallel_for splits
// the batch into blocks of rows and each thread runs the WHOLE sequence loop for its block
// (its own small GEMMs, its own gate passes), with no synchronisation between steps. Only the
// weight gradients combine rows, in the GEMMs at the end. Results depend on the thread count
// only through the GEMMs' blocking (float rounding), never on timing.
//
// Memory: the forward keeps the activated gates [T, B, 4H], c_0..c_T and h_0..h_T (tanh(c_t) is
// recomputed in the backward instead of stored); the backward adds δa [T, B, 4H]. The saved
// tensors are left as they were, so a graph kept with retain_graph=True can be run again.
// Checkpointed BPTT (the *_checkpointed operators) keeps only (c, h) every k steps and recomputes
// each segment in the backward: O(T/k + k) memory for one more forward pass. Inference keeps
// nothing: its memory does not grow with T.
//
// Binding: the functions are registered as torch operators (`torch.ops.lstmgan.*`, schemas at the
// end of this file), not as a Python module; backends.py adds their autograd formula and their
// "fake" (shape-only) versions, so autograd, torch.compile and torch.library.opcheck all see them.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

using at::Tensor;
using at::vec::Vectorized;

namespace {

constexpr int64_t kMaxFoldedInput = 16;   // input_dim up to which W_x x_t + b is folded into the gate pass
constexpr int64_t kMinRowsPerThread = 16; // smaller row blocks make the per-step GEMMs inefficient

// σ and tanh from ATen's fast exp (exp_u20: a degree-5 polynomial, ≤ 20 ulp; float64 falls back
// to the exact exp): one exp and one division each, about twice as fast as Sleef's tanh.
template <typename T>
inline Vectorized<T> sigmoid(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1));
  return one / (one + x.neg().exp_u20());                  // σ(x) = 1 / (1 + e^−x)
}

template <typename T>
inline Vectorized<T> tanh(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1)), two(T(2)), minus_two(T(-2));
  return two / (one + (x * minus_two).exp_u20()) - one;    // tanh(x) = 2 σ(2x) − 1
}

// The input term W_x x_t + b of a sequence, when it is folded into the gate pass.
template <typename T>
struct FoldedInput {
  const T* x = nullptr;      // x [B, T, D] (contiguous); nullptr: the input term is already in `a`
  const T* W_xT = nullptr;   // W_xᵀ [D, G]
  const T* bias = nullptr;   // b [G]
  int64_t D = 0, T_len = 0;

  // pre-activations [j, j + n) of one gate row: (a or 0) + b + Σ_d W_x[:, d] x_d
  inline Vectorized<T> add(Vectorized<T> acc, int64_t row, int64_t t, int64_t j, int64_t n, int64_t G) const {
    using Vec = Vectorized<T>;
    if (x == nullptr) return acc;
    acc = acc + Vec::loadu(bias + j, n);
    const T* x_t = x + (row * T_len + t) * D;
    for (int64_t d = 0; d < D; ++d) acc = acc + Vec::loadu(W_xT + d * G + j, n) * Vec(x_t[d]);
    return acc;
  }
};

// One forward step of the gates for rows [begin, end): `a` holds W_h h_{t-1} (if `recurrent`) and,
// unless folded, the input term; it gets the activations i, f, o, g. c_prev, c, h are [B, H].
template <typename T>
void lstm_gates_forward(T* a, const T* c_prev, T* c, T* h, int64_t begin, int64_t end, int64_t H, int64_t t,
                        bool recurrent, const FoldedInput<T>& input) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size(), G = 4 * H;
  for (int64_t row = begin; row < end; ++row) {
    T* ar = a + row * G;
    const T* cp = c_prev + row * H;
    T* cr = c + row * H;
    T* hr = h + row * H;
    for (int64_t j = 0; j < H; j += V) {
      const int64_t n = std::min(V, H - j);
      auto pre = [&](int64_t k) {   // gate k's pre-activation at [j, j + n)
        Vec acc = recurrent || input.x == nullptr ? Vec::loadu(ar + k * H + j, n) : Vec(T(0));
        return input.add(acc, row, t, k * H + j, n, G);
      };
      const Vec i = sigmoid(pre(0)), f = sigmoid(pre(1)), o = sigmoid(pre(2)), g = tanh(pre(3));
      const Vec cn = f * Vec::loadu(cp + j, n) + i * g;      // c_t = f ⊙ c_{t-1} + i ⊙ g
      i.store(ar + j, n);
      f.store(ar + H + j, n);
      o.store(ar + 2 * H + j, n);
      g.store(ar + 3 * H + j, n);
      cn.store(cr + j, n);
      (o * tanh(cn)).store(hr + j, n);                        // h_t = o ⊙ tanh(c_t)
    }
  }
}

// Gradients of the input term, summed in the backward pass while δa is in registers (folded
// inputs only): db += δa and W_xᵀ's gradient [D, G] += x_t ⊗ δa, one accumulator per row block.
template <typename T>
struct InputGradients {
  T* db = nullptr;           // [G]; nullptr: not folded, the caller uses GEMMs over all steps
  T* dW_xT = nullptr;        // [D, G]
  const T* x = nullptr;
  int64_t D = 0, T_len = 0;

  inline void add(const Vectorized<T>& delta, int64_t row, int64_t t, int64_t j, int64_t n, int64_t G) const {
    using Vec = Vectorized<T>;
    if (db == nullptr) return;
    (Vec::loadu(db + j, n) + delta).store(db + j, n);
    const T* x_t = x + (row * T_len + t) * D;
    for (int64_t d = 0; d < D; ++d) {
      if (x_t[d] != T(0)) (Vec::loadu(dW_xT + d * G + j, n) + delta * Vec(x_t[d])).store(dW_xT + d * G + j, n);
    }
  }
};

// The input-term gradients of one block of rows: its accumulators in `sums` [D + 1, G] (db, then dW_xᵀ),
// when the input is folded; otherwise empty (the caller uses GEMMs over all steps).
template <typename T>
InputGradients<T> input_gradients(bool folded, const Tensor& sums, const Tensor& x) {
  InputGradients<T> input;
  if (folded) {
    input.db = sums.data_ptr<T>();
    input.dW_xT = input.db + sums.size(1);
    input.x = x.data_ptr<T>();
    input.D = x.size(2);
    input.T_len = x.size(1);
  }
  return input;
}

// One backward step for rows [begin, end): from the activations `a` [B, 4H], c_t, c_{t-1}, the
// gradient dh of h_t and the running dc (of c_t, from later steps), write δa and dc of c_{t-1}.
template <typename T>
void lstm_gates_backward(const T* a, T* da, const T* c, const T* c_prev, const T* dh, T* dc, int64_t begin,
                         int64_t end, int64_t H, int64_t t, const InputGradients<T>& input) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size(), G = 4 * H;
  const Vec one(T(1));
  for (int64_t row = begin; row < end; ++row) {
    const T* ar = a + row * G;
    T* dar = da + row * G;
    const T* cr = c + row * H;
    const T* cp = c_prev + row * H;
    const T* dhr = dh + row * H;
    T* dcr = dc + row * H;
    for (int64_t j = 0; j < H; j += V) {
      const int64_t n = std::min(V, H - j);
      const Vec i = Vec::loadu(ar + j, n), f = Vec::loadu(ar + H + j, n);
      const Vec o = Vec::loadu(ar + 2 * H + j, n), g = Vec::loadu(ar + 3 * H + j, n);
      const Vec d_h = Vec::loadu(dhr + j, n);
      const Vec tc = tanh(Vec::loadu(cr + j, n));
      const Vec d_c = Vec::loadu(dcr + j, n) + d_h * o * (one - tc * tc);   // dc += dh ⊙ o ⊙ (1 − tanh²c)
      const Vec delta[4] = {d_c * g * i * (one - i),                        // δa_i = dc ⊙ g ⊙ σ'
                            d_c * Vec::loadu(cp + j, n) * f * (one - f),    // δa_f = dc ⊙ c_{t-1} ⊙ σ'
                            d_h * tc * o * (one - o),                       // δa_o = dh ⊙ tanh(c) ⊙ σ'
                            d_c * i * (one - g * g)};                       // δa_g = dc ⊙ i ⊙ tanh'
      for (int64_t k = 0; k < 4; ++k) {
        delta[k].store(dar + k * H + j, n);
        input.add(delta[k], row, t, k * H + j, n, G);
      }
      (d_c * f).store(dcr + j, n);                                          // dc_{t-1} = dc ⊙ f
    }
  }
}

// Vanilla RNN forward for rows [begin, end) at step t: h = tanh(a + input term) over `a` [B, H].
template <typename T>
void rnn_activate(T* a, int64_t begin, int64_t end, int64_t H, int64_t t, bool recurrent,
                  const FoldedInput<T>& input) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size();
  for (int64_t row = begin; row < end; ++row) {
    T* ar = a + row * H;
    for (int64_t j = 0; j < H; j += V) {
      const int64_t n = std::min(V, H - j);
      Vec acc = recurrent || input.x == nullptr ? Vec::loadu(ar + j, n) : Vec(T(0));
      tanh(input.add(acc, row, t, j, n, H)).store(ar + j, n);
    }
  }
}

// δa = dh ⊙ (1 − h²) for the vanilla RNN, rows [begin, end) of [B, H] blocks.
template <typename T>
void rnn_backward_rows(T* da, const T* dh, const T* h, int64_t begin, int64_t end, int64_t H) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size();
  const Vec one(T(1));
  for (int64_t k = begin * H; k < end * H; k += V) {
    const int64_t n = std::min(V, end * H - k);
    const Vec hv = Vec::loadu(h + k, n);
    (Vec::loadu(dh + k, n) * (one - hv * hv)).store(da + k, n);
  }
}

// Every entry point checks what it is given (a wrong call is an error, never a wrong read).
void check_same_kind(const Tensor& x, std::initializer_list<Tensor> others) {
  TORCH_CHECK(x.device().is_cpu(), "the compiled kernel runs on the CPU");
  for (const Tensor& other : others) {
    TORCH_CHECK(other.device().is_cpu(), "the compiled kernel runs on the CPU");
    TORCH_CHECK(other.scalar_type() == x.scalar_type(), "x and the weights must share one dtype");
  }
}

// x [B, T, D], W_x [gates·H, D], W_h [gates·H, H]
void check_weights(const Tensor& x, const Tensor& W_x, const Tensor& W_h, int64_t gates) {
  TORCH_CHECK(x.dim() == 3, "x must be [batch, time, input_dim]");
  TORCH_CHECK(W_x.dim() == 2 && W_h.dim() == 2, "W_x and W_h must be matrices");
  check_same_kind(x, {W_x, W_h});
  const int64_t H = W_h.size(1);
  TORCH_CHECK(W_h.size(0) == gates * H && W_x.size(0) == gates * H && W_x.size(1) == x.size(2),
              "weight shapes do not match");
  TORCH_CHECK(x.size(1) >= 1, "sequences need at least one step");
}

void check_inputs(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b, int64_t gates) {
  check_weights(x, W_x, W_h, gates);
  check_same_kind(x, {b});
  TORCH_CHECK(b.dim() == 1 && b.size(0) == W_x.size(0), "b must be a vector of W_x's rows");
}

// The backward's inputs: the forward's, dL/dh_T [B, H], and what the forward saved, each [steps, B, width].
void check_backward_inputs(const Tensor& grad_h, const Tensor& x, const Tensor& W_x, const Tensor& W_h,
                           int64_t gates, std::initializer_list<std::tuple<const Tensor*, int64_t, int64_t>> saved) {
  check_weights(x, W_x, W_h, gates);
  const int64_t B = x.size(0), H = W_h.size(1);
  TORCH_CHECK(grad_h.dim() == 2 && grad_h.size(0) == B && grad_h.size(1) == H, "grad_h must be [batch, hidden]");
  check_same_kind(x, {grad_h});
  for (const auto& [tensor, steps, width] : saved) {
    TORCH_CHECK(tensor->dim() == 3 && tensor->size(0) == steps && tensor->size(1) == B && tensor->size(2) == width,
                "the saved forward tensors do not match x and the weights");
    TORCH_CHECK(tensor->is_contiguous(), "the saved forward tensors must be contiguous");
    check_same_kind(x, {*tensor});
  }
}

// x [B, T, D] -> time-major rows [T·B, D]
Tensor time_major(const Tensor& x) { return x.transpose(0, 1).contiguous().view({-1, x.size(2)}); }

// The input term of a sequence: folded into the gate passes (small D), or W_x x_t + b for all
// steps at once into `pre` [T, B, G] (large D, one GEMM).
template <typename T>
FoldedInput<T> input_term(const Tensor& x, const Tensor& W_xT, const Tensor& b, const Tensor& pre) {
  FoldedInput<T> input;
  if (x.size(2) <= kMaxFoldedInput) {
    input.x = x.data_ptr<T>();
    input.W_xT = W_xT.data_ptr<T>();
    input.bias = b.data_ptr<T>();
    input.D = x.size(2);
    input.T_len = x.size(1);
  } else {
    Tensor all_steps = pre.view({-1, pre.size(2)});
    at::addmm_out(all_steps, b, time_major(x), W_xT);
  }
  return input;
}

// The number of blocks a batch of B rows is split into: one per thread, each at least kMinRowsPerThread rows.
inline int64_t row_blocks(int64_t B) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B / kMinRowsPerThread));
}

// Runs `body(block, begin, end)` for each block of batch rows, the blocks in parallel.
template <typename F>
void over_row_blocks(int64_t B, const F& body) {
  const int64_t blocks = row_blocks(B), size = (B + blocks - 1) / blocks;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    at::NoGradGuard no_grad;   // grad mode is per thread: the pool's threads must not record the products
    for (int64_t k = first; k < last; ++k) {
      const int64_t begin = k * size, end = std::min(B, begin + size);
      if (begin < end) body(k, begin, end);
    }
  });
}

inline Tensor rows(const Tensor& m, int64_t begin, int64_t end) { return m.narrow(0, begin, end - begin); }

// dL/dx [B, T, D] = δa W_x from δa [T·B, G] (time-major), or an empty tensor when x needs no gradient
// (an operator returns a tensor in every slot; the Python side turns this one into None).
Tensor grad_input(const Tensor& grad_a, const Tensor& W_x, const Tensor& x, bool needs_grad_x) {
  if (!needs_grad_x) return at::empty({0}, x.options());
  return grad_a.mm(W_x).view({x.size(1), x.size(0), -1}).transpose(0, 1).contiguous();
}

}  // namespace

// Training forward: returns h_T [B, H] and what the backward needs (activated gates, cells, hiddens).
std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_forward(const Tensor& x_in, const Tensor& W_x_in,
                                                        const Tensor& W_h_in, const Tensor& b_in) {
  check_inputs(x_in, W_x_in, W_h_in, b_in, 4);
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous(), b = b_in.contiguous();
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  const bool folded = x.size(2) <= kMaxFoldedInput;
  Tensor gates = at::empty({T, B, 4 * H}, x.options());
  Tensor cells = at::empty({T + 1, B, H}, x.options());
  Tensor hiddens = at::empty({T + 1, B, H}, x.options());
  cells[0].zero_();
  hiddens[0].zero_();
  const Tensor W_hT = W_h.t(), W_xT = W_x.t().contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    const FoldedInput<scalar_t> input = input_term<scalar_t>(x, W_xT, b, gates);
    over_row_blocks(B, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t t = 0; t < T; ++t) {
        Tensor a = rows(gates[t], begin, end);
        if (t > 0) {                                                             // + W_h h_{t-1}
          if (folded) at::mm_out(a, rows(hiddens[t], begin, end), W_hT);
          else a.addmm_(rows(hiddens[t], begin, end), W_hT);
        }
        lstm_gates_forward<scalar_t>(gates[t].data_ptr<scalar_t>(), cells[t].data_ptr<scalar_t>(),
                                     cells[t + 1].data_ptr<scalar_t>(), hiddens[t + 1].data_ptr<scalar_t>(),
                                     begin, end, H, t, t > 0, input);
      }
    });
  });
  return {hiddens[T].clone(), gates, cells, hiddens};
}

// Backward through time from grad_h = dL/dh_T. Returns (dx, dW_x, dW_h, db); dx is empty unless needs_grad_x.
std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_backward(const Tensor& grad_h, const Tensor& x_in,
                                                         const Tensor& W_x_in, const Tensor& W_h_in,
                                                         const Tensor& gates, const Tensor& cells,
                                                         const Tensor& hiddens, bool needs_grad_x) {
  const int64_t B = x_in.size(0), T = x_in.size(1), D = x_in.size(2), H = W_h_in.size(1), G = 4 * H;
  check_backward_inputs(grad_h, x_in, W_x_in, W_h_in, 4, {{&gates, T, G}, {&cells, T + 1, H}, {&hiddens, T + 1, H}});
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous();
  const bool folded = D <= kMaxFoldedInput;
  Tensor deltas = at::empty_like(gates);                                         // δa_t, [T, B, 4H]
  Tensor dh = grad_h.contiguous().clone();
  Tensor dc = at::zeros_like(dh);
  const int64_t blocks = row_blocks(B);
  Tensor input_sums = at::zeros({blocks, D + 1, G}, x.options());                // per block: db, then dW_xᵀ
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward", [&] {
    over_row_blocks(B, [&](int64_t block, int64_t begin, int64_t end) {
      const InputGradients<scalar_t> input = input_gradients<scalar_t>(folded, input_sums[block], x);
      for (int64_t t = T - 1; t >= 0; --t) {
        lstm_gates_backward<scalar_t>(gates[t].data_ptr<scalar_t>(), deltas[t].data_ptr<scalar_t>(),
                                      cells[t + 1].data_ptr<scalar_t>(), cells[t].data_ptr<scalar_t>(),
                                      dh.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(), begin, end, H, t, input);
        if (t > 0) {
          Tensor dh_rows = rows(dh, begin, end);
          at::mm_out(dh_rows, rows(deltas[t], begin, end), W_h);                // dh_{t-1} = W_hᵀ δa_t
        }
      }
    });
  });
  const Tensor grad_a = deltas.view({T * B, G});
  // Σ_t δa_t h_{t-1}ᵀ; step t's previous state is hiddens[t], and h_0 = 0 adds nothing
  Tensor grad_W_h = T > 1 ? deltas.narrow(0, 1, T - 1).reshape({-1, G}).t().mm(
                                hiddens.narrow(0, 1, T - 1).reshape({-1, H}))
                          : at::zeros_like(W_h);
  Tensor grad_W_x, grad_b;
  if (folded) {
    const Tensor sums = input_sums.sum(0);                                       // blocks in a fixed order
    grad_b = sums[0].clone();
    grad_W_x = sums.narrow(0, 1, D).t().contiguous();
  } else {
    grad_W_x = grad_a.t().mm(time_major(x));                                      // Σ_t δa_t x_tᵀ
    grad_b = grad_a.sum(0);
  }
  return {grad_input(grad_a, W_x, x, needs_grad_x), grad_W_x, grad_W_h, grad_b};
}

// The forward recurrence without storing the sequence (one [B, 4H] gate buffer and the states): h_T.
// With `segment` k > 0 it also keeps the state (c, h) before every k-th step in saved_c, saved_h
// [⌈T/k⌉, B, H]: all that checkpointed backpropagation through time needs of the forward.
Tensor lstm_run(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b, int64_t segment,
                Tensor* saved_c, Tensor* saved_h) {
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor a = at::empty({B, 4 * H}, x.options());
  Tensor c = at::zeros({B, H}, x.options()), c_next = at::empty({B, H}, x.options());
  Tensor h = at::zeros({B, H}, x.options());
  const Tensor W_hT = W_h.t(), W_xT = W_x.t().contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_run", [&] {
    FoldedInput<scalar_t> input;
    if (x.size(2) <= kMaxFoldedInput) input = input_term<scalar_t>(x, W_xT, b, a);
    over_row_blocks(B, [&](int64_t, int64_t begin, int64_t end) {
      Tensor a_rows = rows(a, begin, end), h_rows = rows(h, begin, end);
      scalar_t* cur = c.data_ptr<scalar_t>();
      scalar_t* next = c_next.data_ptr<scalar_t>();
      for (int64_t t = 0; t < T; ++t) {
        if (segment > 0 && t % segment == 0) {                                    // a checkpoint: c_t, h_t
          const int64_t k = t / segment, first = begin * H, last = end * H;
          std::copy(cur + first, cur + last, (*saved_c)[k].data_ptr<scalar_t>() + first);
          std::copy(h.data_ptr<scalar_t>() + first, h.data_ptr<scalar_t>() + last,
                    (*saved_h)[k].data_ptr<scalar_t>() + first);
        }
        if (input.x == nullptr) {                                                 // large input: its own GEMM
          at::addmm_out(a_rows, b, x.select(1, t).narrow(0, begin, end - begin), W_xT);
          if (t > 0) a_rows.addmm_(h_rows, W_hT);
        } else if (t > 0) {
          at::mm_out(a_rows, h_rows, W_hT);
        }
        lstm_gates_forward<scalar_t>(a.data_ptr<scalar_t>(), cur, next, h.data_ptr<scalar_t>(), begin, end, H, t,
                                     t > 0, input);
        std::swap(cur, next);
      }
    });
  });
  return h;
}

// Inference: h_T, memory independent of T.
Tensor lstm_inference(const Tensor& x_in, const Tensor& W_x_in, const Tensor& W_h_in, const Tensor& b_in) {
  check_inputs(x_in, W_x_in, W_h_in, b_in, 4);
  return lstm_run(x_in.contiguous(), W_x_in.contiguous(), W_h_in.contiguous(), b_in.contiguous(), 0, nullptr,
                  nullptr);
}

// Training forward for checkpointed BPTT: h_T and the states before steps 0, k, 2k, ... (c_0 = h_0 = 0).
std::tuple<Tensor, Tensor, Tensor> lstm_forward_checkpointed(const Tensor& x_in, const Tensor& W_x_in,
                                                             const Tensor& W_h_in, const Tensor& b_in,
                                                             int64_t segment) {
  check_inputs(x_in, W_x_in, W_h_in, b_in, 4);
  TORCH_CHECK(segment >= 1, "the segment length must be at least 1");
  const int64_t B = x_in.size(0), T = x_in.size(1), H = W_h_in.size(1), S = (T + segment - 1) / segment;
  Tensor saved_c = at::empty({S, B, H}, x_in.options()), saved_h = at::empty({S, B, H}, x_in.options());
  Tensor h_T = lstm_run(x_in.contiguous(), W_x_in.contiguous(), W_h_in.contiguous(), b_in.contiguous(), segment,
                        &saved_c, &saved_h);
  return {h_T, saved_c, saved_h};
}

// Checkpointed backward through time: segment by segment from the last, recompute the segment's
// gates, cells and hiddens from its saved state (k steps of forward, in [k, B, 4H] and [k + 1, B, H]
// buffers reused by every segment), then run the segment's backward and add its weight gradients.
// Memory: O(T/k + k) states instead of O(T); time: one more forward pass.
std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_backward_checkpointed(
    const Tensor& grad_h, const Tensor& x_in, const Tensor& W_x_in, const Tensor& W_h_in, const Tensor& b_in,
    const Tensor& saved_c, const Tensor& saved_h, int64_t segment, bool needs_grad_x) {
  TORCH_CHECK(segment >= 1, "the segment length must be at least 1");
  const int64_t B = x_in.size(0), T = x_in.size(1), D = x_in.size(2), H = W_h_in.size(1), G = 4 * H;
  const int64_t S = (T + segment - 1) / segment, K = std::min(segment, T);
  check_backward_inputs(grad_h, x_in, W_x_in, W_h_in, 4, {{&saved_c, S, H}, {&saved_h, S, H}});
  check_same_kind(x_in, {b_in});
  TORCH_CHECK(b_in.dim() == 1 && b_in.size(0) == G, "b must be a vector of W_x's rows");
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous(), b = b_in.contiguous();
  const bool folded = D <= kMaxFoldedInput;
  const Tensor W_hT = W_h.t(), W_xT = W_x.t().contiguous();
  Tensor gates = at::empty({K, B, G}, x.options()), deltas = at::empty({K, B, G}, x.options());
  Tensor cells = at::empty({K + 1, B, H}, x.options()), hiddens = at::empty({K + 1, B, H}, x.options());
  Tensor dh = grad_h.contiguous().clone(), dc = at::zeros_like(dh);
  const int64_t blocks = row_blocks(B);
  Tensor input_sums = at::zeros({blocks, D + 1, G}, x.options());                 // per block: db, then dW_xᵀ
  Tensor grad_W_h = at::zeros_like(W_h), grad_W_x = at::zeros_like(W_x), grad_b = at::zeros_like(b);
  Tensor grad_x = needs_grad_x ? at::empty_like(x) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward_checkpointed", [&] {
    FoldedInput<scalar_t> input;                                                  // reads x at the global step
    if (folded) input = input_term<scalar_t>(x, W_xT, b, gates);
    for (int64_t s = S - 1; s >= 0; --s) {
      const int64_t t0 = s * segment, n = std::min(segment, T - t0);
      cells[0].copy_(saved_c[s]);
      hiddens[0].copy_(saved_h[s]);
      const Tensor x_segment = x.narrow(1, t0, n);
      if (!folded) {                                                              // W_x x_t + b of the segment
        Tensor pre = gates.narrow(0, 0, n).view({-1, G});
        at::addmm_out(pre, b, time_major(x_segment), W_xT);
      }
      over_row_blocks(B, [&](int64_t block, int64_t begin, int64_t end) {
        for (int64_t j = 0; j < n; ++j) {                                          // recompute the segment
          const int64_t t = t0 + j;
          Tensor a = rows(gates[j], begin, end);
          if (t > 0) {
            if (folded) at::mm_out(a, rows(hiddens[j], begin, end), W_hT);
            else a.addmm_(rows(hiddens[j], begin, end), W_hT);
          }
          lstm_gates_forward<scalar_t>(gates[j].data_ptr<scalar_t>(), cells[j].data_ptr<scalar_t>(),
                                       cells[j + 1].data_ptr<scalar_t>(), hiddens[j + 1].data_ptr<scalar_t>(),
                                       begin, end, H, t, t > 0, input);
        }
        const InputGradients<scalar_t> input_grads = input_gradients<scalar_t>(folded, input_sums[block], x);
        for (int64_t j = n - 1; j >= 0; --j) {                                     // its backward
          const int64_t t = t0 + j;
          lstm_gates_backward<scalar_t>(gates[j].data_ptr<scalar_t>(), deltas[j].data_ptr<scalar_t>(),
                                        cells[j + 1].data_ptr<scalar_t>(), cells[j].data_ptr<scalar_t>(),
                                        dh.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(), begin, end, H, t,
                                        input_grads);
          if (t > 0) {
            Tensor dh_rows = rows(dh, begin, end);
            at::mm_out(dh_rows, rows(deltas[j], begin, end), W_h);                 // dh_{t-1} = W_hᵀ δa_t
          }
        }
      });
      const Tensor delta_rows = deltas.narrow(0, 0, n).reshape({-1, G});
      grad_W_h.addmm_(delta_rows.t(), hiddens.narrow(0, 0, n).reshape({-1, H}));  // Σ_t δa_t h_{t-1}ᵀ
      if (!folded) {
        grad_W_x.addmm_(delta_rows.t(), time_major(x_segment));
        grad_b.add_(delta_rows.sum(0));
      }
      if (needs_grad_x) grad_x.narrow(1, t0, n).copy_(delta_rows.mm(W_x).view({n, B, D}).transpose(0, 1));
    }
  });
  if (folded) {
    const Tensor sums = input_sums.sum(0);                                       // blocks in a fixed order
    grad_b = sums[0].clone();
    grad_W_x = sums.narrow(0, 1, D).t().contiguous();
  }
  return {grad_x, grad_W_x, grad_W_h, grad_b};
}

// Vanilla RNN, h_t = tanh(W_x x_t + b + W_h h_{t-1}): returns h_T and all h_t [T, B, H].
std::tuple<Tensor, Tensor> rnn_forward(const Tensor& x_in, const Tensor& W_x_in, const Tensor& W_h_in,
                                       const Tensor& b_in) {
  check_inputs(x_in, W_x_in, W_h_in, b_in, 1);
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous(), b = b_in.contiguous();
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  const bool folded = x.size(2) <= kMaxFoldedInput;
  Tensor hiddens = at::empty({T, B, H}, x.options());
  const Tensor W_hT = W_h.t(), W_xT = W_x.t().contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_forward", [&] {
    const FoldedInput<scalar_t> input = input_term<scalar_t>(x, W_xT, b, hiddens);
    over_row_blocks(B, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t t = 0; t < T; ++t) {
        if (t > 0) {
          Tensor a = rows(hiddens[t], begin, end);
          if (folded) at::mm_out(a, rows(hiddens[t - 1], begin, end), W_hT);
          else a.addmm_(rows(hiddens[t - 1], begin, end), W_hT);
        }
        rnn_activate<scalar_t>(hiddens[t].data_ptr<scalar_t>(), begin, end, H, t, t > 0, input);
      }
    });
  });
  return {hiddens[T - 1].clone(), hiddens};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> rnn_backward(const Tensor& grad_h, const Tensor& x_in,
                                                        const Tensor& W_x_in, const Tensor& W_h_in,
                                                        const Tensor& hiddens, bool needs_grad_x) {
  const int64_t B = x_in.size(0), T = x_in.size(1), H = W_h_in.size(1);
  check_backward_inputs(grad_h, x_in, W_x_in, W_h_in, 1, {{&hiddens, T, H}});
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous();
  Tensor grad_a = at::empty_like(hiddens);
  Tensor dh = grad_h.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_backward", [&] {
    over_row_blocks(B, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t t = T - 1; t >= 0; --t) {
        rnn_backward_rows<scalar_t>(grad_a[t].data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(),
                                    hiddens[t].data_ptr<scalar_t>(), begin, end, H);   // δa_t = dh ⊙ (1 − h_t²)
        if (t > 0) {
          Tensor dh_rows = rows(dh, begin, end);
          at::mm_out(dh_rows, rows(grad_a[t], begin, end), W_h);                    // dh_{t-1} = W_hᵀ δa_t
        }
      }
    });
  });
  const Tensor flat = grad_a.view({T * B, H});
  Tensor grad_W_h = T > 1 ? grad_a.narrow(0, 1, T - 1).reshape({-1, H}).t().mm(
                                hiddens.narrow(0, 0, T - 1).reshape({-1, H}))
                          : at::zeros_like(W_h);                                   // Σ_t δa_t h_{t-1}ᵀ
  Tensor grad_W_x = flat.t().mm(time_major(x));
  Tensor grad_b = flat.sum(0);
  return {grad_input(flat, W_x, x, needs_grad_x), grad_W_x, grad_W_h, grad_b};
}

Tensor rnn_inference(const Tensor& x_in, const Tensor& W_x_in, const Tensor& W_h_in, const Tensor& b_in) {
  check_inputs(x_in, W_x_in, W_h_in, b_in, 1);
  const Tensor x = x_in.contiguous(), W_x = W_x_in.contiguous(), W_h = W_h_in.contiguous(), b = b_in.contiguous();
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor h = at::empty({B, H}, x.options()), a = at::empty({B, H}, x.options());
  const Tensor W_hT = W_h.t(), W_xT = W_x.t().contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_inference", [&] {
    FoldedInput<scalar_t> input;
    if (x.size(2) <= kMaxFoldedInput) input = input_term<scalar_t>(x, W_xT, b, a);
    over_row_blocks(B, [&](int64_t, int64_t begin, int64_t end) {
      Tensor a_rows = rows(a, begin, end), h_rows = rows(h, begin, end);
      for (int64_t t = 0; t < T; ++t) {
        if (input.x == nullptr) {
          at::addmm_out(a_rows, b, x.select(1, t).narrow(0, begin, end - begin), W_xT);
          if (t > 0) a_rows.addmm_(h_rows, W_hT);
        } else if (t > 0) {
          at::mm_out(a_rows, h_rows, W_hT);
        }
        rnn_activate<scalar_t>(a.data_ptr<scalar_t>(), begin, end, H, t, t > 0, input);
        h_rows.copy_(a_rows);
      }
    });
  });
  return h;
}

// The operators' schemas (what torch.library, autograd and torch.compile read), then their CPU kernels.
TORCH_LIBRARY(lstmgan, m) {
  m.def("lstm_forward(Tensor x, Tensor W_x, Tensor W_h, Tensor b) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_backward(Tensor grad_h, Tensor x, Tensor W_x, Tensor W_h, Tensor gates, Tensor cells, "
        "Tensor hiddens, bool needs_grad_x) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("lstm_inference(Tensor x, Tensor W_x, Tensor W_h, Tensor b) -> Tensor");
  m.def("lstm_forward_checkpointed(Tensor x, Tensor W_x, Tensor W_h, Tensor b, int segment) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("lstm_backward_checkpointed(Tensor grad_h, Tensor x, Tensor W_x, Tensor W_h, Tensor b, Tensor saved_c, "
        "Tensor saved_h, int segment, bool needs_grad_x) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("rnn_forward(Tensor x, Tensor W_x, Tensor W_h, Tensor b) -> (Tensor, Tensor)");
  m.def("rnn_backward(Tensor grad_h, Tensor x, Tensor W_x, Tensor W_h, Tensor hiddens, bool needs_grad_x) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("rnn_inference(Tensor x, Tensor W_x, Tensor W_h, Tensor b) -> Tensor");
}

TORCH_LIBRARY_IMPL(lstmgan, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
  m.impl("lstm_inference", &lstm_inference);
  m.impl("lstm_forward_checkpointed", &lstm_forward_checkpointed);
  m.impl("lstm_backward_checkpointed", &lstm_backward_checkpointed);
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
  m.impl("rnn_inference", &rnn_inference);
}
