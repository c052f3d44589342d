// The LSTM and vanilla-RNN recurrences of lstmgan, forward and backward through time, in C++.
//
// Same equations as lstm.py / rnn.py, with the gates fused in the order i, f, o, g:
//
//     a_t = W_x x_t + b + W_h h_{t-1}                 (one GEMM for all x_t, one per step for h)
//     i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
//     c_t = f ⊙ c_{t-1} + i ⊙ g;         h_t = o ⊙ tanh(c_t)
//
// Per step: one recurrent GEMM (ATen addmm/mm into preallocated buffers) and ONE pass over the
// [B, 4H] block for all gate arithmetic, vectorised with at::vec::Vectorized and split over the
// batch with at::parallel_for. Backward: one fused pass per step for the gate gradients and one
// GEMM for dh_{t-1}; the weight gradients are single GEMMs over all steps at the end
// (dW_h = Σ_t δa_t h_{t-1}ᵀ as one [4H, T·B] × [T·B, H] product).
//
// Memory: the forward keeps the activated gates [T, B, 4H], c_0..c_T and h_0..h_T (tanh(c_t) is
// recomputed in the backward instead of stored); the backward adds δa [T, B, 4H]. It leaves the
// saved tensors as they were, so a graph kept with retain_graph=True can be differentiated again.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <vector>

using at::Tensor;
using at::vec::Vectorized;

namespace {

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

// Rows of the batch per parallel chunk: enough work (~16K elements) to pay for a thread.
inline int64_t grain(int64_t row_elements) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_elements)); }

// One forward step of the gates for rows [0, B): `a` holds pre-activations [B, 4H] and gets the
// activations i, f, o, g; c_prev, c, h are [B, H].
template <typename T>
void lstm_step_forward(T* a, const T* c_prev, T* c, T* h, int64_t B, int64_t H) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size();
  at::parallel_for(0, B, grain(4 * H), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      T* ai = a + row * 4 * H;
      T* af = ai + H;
      T* ao = af + H;
      T* ag = ao + H;
      const T* cp = c_prev + row * H;
      T* cr = c + row * H;
      T* hr = h + row * H;
      for (int64_t j = 0; j < H; j += V) {
        const int64_t n = std::min(V, H - j);
        const Vec i = sigmoid(Vec::loadu(ai + j, n));
        const Vec f = sigmoid(Vec::loadu(af + j, n));
        const Vec o = sigmoid(Vec::loadu(ao + j, n));
        const Vec g = tanh(Vec::loadu(ag + j, n));
        const Vec cn = f * Vec::loadu(cp + j, n) + i * g;      // c_t = f ⊙ c_{t-1} + i ⊙ g
        const Vec hn = o * tanh(cn);                           // h_t = o ⊙ tanh(c_t)
        i.store(ai + j, n);
        f.store(af + j, n);
        o.store(ao + j, n);
        g.store(ag + j, n);
        cn.store(cr + j, n);
        hn.store(hr + j, n);
      }
    }
  });
}

// One backward step of the gates: from the activations `a` [B, 4H], c_t, c_{t-1}, the gradient dh
// of h_t and the running dc (of c_t, from later steps), write δa [B, 4H] and dc of c_{t-1}.
template <typename T>
void lstm_step_backward(const T* a, T* da, const T* c, const T* c_prev, const T* dh, T* dc, int64_t B, int64_t H) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size();
  const Vec one(T(1));
  at::parallel_for(0, B, grain(4 * H), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* ai = a + row * 4 * H;
      const T* af = ai + H;
      const T* ao = af + H;
      const T* ag = ao + H;
      T* dai = da + row * 4 * H;
      T* daf = dai + H;
      T* dao = daf + H;
      T* dag = dao + H;
      const T* cr = c + row * H;
      const T* cp = c_prev + row * H;
      const T* dhr = dh + row * H;
      T* dcr = dc + row * H;
      for (int64_t j = 0; j < H; j += V) {
        const int64_t n = std::min(V, H - j);
        const Vec i = Vec::loadu(ai + j, n), f = Vec::loadu(af + j, n);
        const Vec o = Vec::loadu(ao + j, n), g = Vec::loadu(ag + j, n);
        const Vec d_h = Vec::loadu(dhr + j, n);
        const Vec tc = tanh(Vec::loadu(cr + j, n));
        const Vec d_c = Vec::loadu(dcr + j, n) + d_h * o * (one - tc * tc);   // dc += dh ⊙ o ⊙ (1 − tanh²c)
        (d_c * g * i * (one - i)).store(dai + j, n);                          // δa_i = dc ⊙ g ⊙ σ'
        (d_c * Vec::loadu(cp + j, n) * f * (one - f)).store(daf + j, n);      // δa_f = dc ⊙ c_{t-1} ⊙ σ'
        (d_h * tc * o * (one - o)).store(dao + j, n);                         // δa_o = dh ⊙ tanh(c) ⊙ σ'
        (d_c * i * (one - g * g)).store(dag + j, n);                          // δa_g = dc ⊙ i ⊙ tanh'
        (d_c * f).store(dcr + j, n);                                         // dc_{t-1} = dc ⊙ f
      }
    }
  });
}

// δa = dh ⊙ (1 − h²) for the vanilla RNN, over n elements.
template <typename T>
void tanh_backward(T* da, const T* dh, const T* h, int64_t n) {
  using Vec = Vectorized<T>;
  const int64_t V = Vec::size();
  const Vec one(T(1));
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; j += V) {
      const int64_t m = std::min(V, end - j);
      const Vec hv = Vec::loadu(h + j, m);
      (Vec::loadu(dh + j, m) * (one - hv * hv)).store(da + j, m);
    }
  });
}

void check_inputs(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b, int64_t gates) {
  TORCH_CHECK(x.dim() == 3, "x must be [batch, time, input_dim]");
  TORCH_CHECK(x.device().is_cpu(), "the compiled kernel runs on the CPU");
  TORCH_CHECK(x.scalar_type() == W_x.scalar_type() && x.scalar_type() == W_h.scalar_type() &&
                  x.scalar_type() == b.scalar_type(),
              "x and the weights must share one dtype");
  const int64_t H = W_h.size(1);
  TORCH_CHECK(W_h.size(0) == gates * H && W_x.size(0) == gates * H && b.size(0) == gates * H &&
                  W_x.size(1) == x.size(2),
              "weight shapes do not match");
  TORCH_CHECK(x.size(1) >= 1, "sequences need at least one step");
}

// x [B, T, D] -> time-major rows [T·B, D]
Tensor time_major(const Tensor& x) { return x.transpose(0, 1).contiguous().view({-1, x.size(2)}); }

}  // namespace

// Training forward: returns h_T [B, H] and what the backward needs (activated gates, cells, hiddens).
std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b) {
  check_inputs(x, W_x, W_h, b, 4);
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor gates = at::addmm(b, time_major(x), W_x.t()).view({T, B, 4 * H});   // W_x x_t + b, all steps
  Tensor cells = at::empty({T + 1, B, H}, x.options());
  Tensor hiddens = at::empty({T + 1, B, H}, x.options());
  cells[0].zero_();
  hiddens[0].zero_();
  const Tensor W_hT = W_h.t();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    for (int64_t t = 0; t < T; ++t) {
      Tensor a = gates[t];
      if (t > 0) a.addmm_(hiddens[t], W_hT);                                   // + W_h h_{t-1}
      lstm_step_forward<scalar_t>(a.data_ptr<scalar_t>(), cells[t].data_ptr<scalar_t>(),
                                  cells[t + 1].data_ptr<scalar_t>(), hiddens[t + 1].data_ptr<scalar_t>(), B, H);
    }
  });
  return {hiddens[T].clone(), gates, cells, hiddens};
}

// Backward through time from grad_h = dL/dh_T.
std::vector<Tensor> lstm_backward(const Tensor& grad_h, const Tensor& x, const Tensor& W_x, const Tensor& W_h,
                                  const Tensor& gates, const Tensor& cells, const Tensor& hiddens, bool needs_grad_x) {
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor deltas = at::empty_like(gates);                                         // δa_t, [T, B, 4H]
  Tensor dh = grad_h.contiguous().clone();
  Tensor dc = at::zeros_like(dh);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      Tensor da = deltas[t];
      lstm_step_backward<scalar_t>(gates[t].data_ptr<scalar_t>(), da.data_ptr<scalar_t>(),
                                   cells[t + 1].data_ptr<scalar_t>(), cells[t].data_ptr<scalar_t>(),
                                   dh.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(), B, H);
      if (t > 0) at::mm_out(dh, da, W_h);                                       // dh_{t-1} = W_hᵀ δa_t
    }
  });
  const Tensor grad_a = deltas.view({T * B, 4 * H});
  Tensor grad_W_h = grad_a.t().mm(hiddens.narrow(0, 0, T).reshape({T * B, H}));  // Σ_t δa_t h_{t-1}ᵀ (h_0 = 0)
  Tensor grad_W_x = grad_a.t().mm(time_major(x));                                 // Σ_t δa_t x_tᵀ
  Tensor grad_b = grad_a.sum(0);
  Tensor grad_x = needs_grad_x ? grad_a.mm(W_x).view({T, B, -1}).transpose(0, 1) : Tensor();
  return {grad_x, grad_W_x, grad_W_h, grad_b};
}

// Inference: h_T without storing the sequence; the input projection is made a chunk of steps at a time.
Tensor lstm_inference(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b) {
  check_inputs(x, W_x, W_h, b, 4);
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(T, (1 << 22) / std::max<int64_t>(1, B * 4 * H)));
  Tensor c = at::zeros({B, H}, x.options()), c_next = at::empty({B, H}, x.options());
  Tensor h = at::zeros({B, H}, x.options());
  const Tensor W_hT = W_h.t();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_inference", [&] {
    for (int64_t start = 0; start < T; start += chunk) {
      const int64_t steps = std::min(chunk, T - start);
      Tensor gates = at::addmm(b, time_major(x.narrow(1, start, steps)), W_x.t()).view({steps, B, 4 * H});
      for (int64_t s = 0; s < steps; ++s) {
        Tensor a = gates[s];
        if (start + s > 0) a.addmm_(h, W_hT);
        lstm_step_forward<scalar_t>(a.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), c_next.data_ptr<scalar_t>(),
                                    h.data_ptr<scalar_t>(), B, H);
        std::swap(c, c_next);
      }
    }
  });
  return h;
}

// Vanilla RNN, h_t = tanh(W_x x_t + b + W_h h_{t-1}): returns h_T and all h_t [T, B, H].
std::vector<Tensor> rnn_forward(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b) {
  check_inputs(x, W_x, W_h, b, 1);
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor hiddens = at::addmm(b, time_major(x), W_x.t()).view({T, B, H});
  const Tensor W_hT = W_h.t();
  hiddens[0].tanh_();
  for (int64_t t = 1; t < T; ++t) hiddens[t].addmm_(hiddens[t - 1], W_hT).tanh_();
  return {hiddens[T - 1].clone(), hiddens};
}

std::vector<Tensor> rnn_backward(const Tensor& grad_h, const Tensor& x, const Tensor& W_x, const Tensor& W_h,
                                 const Tensor& hiddens, bool needs_grad_x) {
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  Tensor grad_a = at::empty_like(hiddens);
  Tensor dh = grad_h.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      tanh_backward<scalar_t>(grad_a[t].data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(),
                              hiddens[t].data_ptr<scalar_t>(), B * H);             // δa_t = dh ⊙ (1 − h_t²)
      if (t > 0) at::mm_out(dh, grad_a[t], W_h);                                   // dh_{t-1} = W_hᵀ δa_t
    }
  });
  const Tensor flat = grad_a.view({T * B, H});
  Tensor grad_W_h = T > 1 ? grad_a.narrow(0, 1, T - 1).reshape({-1, H}).t().mm(
                                hiddens.narrow(0, 0, T - 1).reshape({-1, H}))
                          : at::zeros_like(W_h);                                   // Σ_t δa_t h_{t-1}ᵀ
  Tensor grad_W_x = flat.t().mm(time_major(x));
  Tensor grad_b = flat.sum(0);
  Tensor grad_x = needs_grad_x ? flat.mm(W_x).view({T, B, -1}).transpose(0, 1) : Tensor();
  return {grad_x, grad_W_x, grad_W_h, grad_b};
}

Tensor rnn_inference(const Tensor& x, const Tensor& W_x, const Tensor& W_h, const Tensor& b) {
  check_inputs(x, W_x, W_h, b, 1);
  const int64_t B = x.size(0), T = x.size(1), H = W_h.size(1);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(T, (1 << 22) / std::max<int64_t>(1, B * H)));
  Tensor h;
  const Tensor W_hT = W_h.t();
  for (int64_t start = 0; start < T; start += chunk) {
    const int64_t steps = std::min(chunk, T - start);
    Tensor pre = at::addmm(b, time_major(x.narrow(1, start, steps)), W_x.t()).view({steps, B, H});
    for (int64_t s = 0; s < steps; ++s) {
      Tensor a = pre[s];
      if (start + s > 0) a.addmm_(h, W_hT);
      h = a.tanh_();
    }
  }
  return h.clone();
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmgan's compiled LSTM and RNN recurrences (forward and backward through time)";
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("lstm_inference", &lstm_inference);
  m.def("rnn_forward", &rnn_forward);
  m.def("rnn_backward", &rnn_backward);
  m.def("rnn_inference", &rnn_inference);
}
